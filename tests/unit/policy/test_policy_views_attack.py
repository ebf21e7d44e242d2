"""Attacks on the shape memo: a memoising engine must answer every question as a memo-less one does.

Each test edits a copy of the shipped policy (or builds facts) so that two targets of one shape are not alike to
the matcher, then asks both engines the same questions in the same order and compares the whole decisions.
"""

from __future__ import annotations

from pathlib import Path

from service.policy import AssignmentFact, Binding, EntityFact, PolicyEngine, Subject, TokenLimits
from service.policy.facts import Decision
from service.policy.views import target_view
from tests.unit.policy.test_policy_decisions import NOW

SHIPPED_BINDING = "[b for b in r.token.bindings if !b.deleted && g4(b.uuid, b.type) && g2(r.obj, b.uuid)] != []"
TREE = [
    ("acme", "customer", None),
    ("apollo", "project", "acme"),
    ("gemini", "project", "acme"),
    ("vm1", "resource", "apollo"),
    ("vm2", "resource", "apollo"),
    ("vm3", "resource", "gemini"),
]


def edit(copy: Path, old: str, new: str) -> Path:
    model = copy / "model.conf"
    text = model.read_text()
    assert text.count(old) == 1
    model.write_text(text.replace(old, new))
    return copy


def engines(
    policy: Path, entities: list[EntityFact], assignments: list[AssignmentFact]
) -> tuple[PolicyEngine, PolicyEngine]:
    memoising, plain = PolicyEngine.from_directory(policy), PolicyEngine.from_directory(policy, 0)
    for engine in (memoising, plain):
        engine.replace_facts(entities, assignments)
    return memoising, plain


def tree() -> list[EntityFact]:
    return [EntityFact(uuid, kind, parent) for uuid, kind, parent in TREE]


def ask(pair: tuple[PolicyEngine, PolicyEngine], subject: Subject, permission: str, target: str) -> Decision:
    memoising, plain = pair
    expected = plain.decide(subject, permission, target, NOW)
    got = memoising.decide(subject, permission, target, NOW)
    assert got == expected, (target, got, expected)
    return got


def test_a_comprehension_rebinding_a_p_field_hides_the_bindings_from_the_view(copy: Path) -> None:
    # p_id is rebound to each binding's uuid: g2(r_obj, p_id) tests the binding, not the assignment
    edit(
        copy,
        SHIPPED_BINDING,
        "[p_id for p_id in [b.uuid for b in r.token.bindings if !b.deleted && g4(b.uuid, b.type)]"
        " if g2(r.obj, p_id)] != []",
    )
    pair = engines(copy, tree(), [AssignmentFact("a-alice", 1, "CUSTOMER.OWNER", "acme", None)])
    bound = Subject(1, False, TokenLimits(frozenset({"RESOURCE.UPDATE"}), frozenset({Binding("project", "apollo")})))
    assert ask(pair, bound, "RESOURCE.UPDATE", "vm1").allowed
    assert not ask(pair, bound, "RESOURCE.UPDATE", "vm3").allowed  # not below apollo: the memo must not allow


def test_a_p_field_bound_again_in_a_comprehension_gives_no_view() -> None:
    expr = "[p_id for p_id in [b.uuid for b in r_token.bindings] if g2(r_obj, p_id)] != []"
    assert target_view(expr, "r_obj", "r_token", ("p_user", "p_role", "p_entity", "p_expires", "p_id")) is None


def test_lines_ordered_by_an_entity_the_view_does_not_see_name_their_own_assignment(copy: Path) -> None:
    # a role held anywhere grants everywhere: the matcher never tests p.entity against the target, yet the
    # evaluator still orders the asker's lines by where p.entity lies on the target's chain (nearest first)
    edit(copy, " && g2(r.obj, p.entity))", ")")
    pair = engines(
        copy,
        tree(),
        [
            AssignmentFact("a-owner", 1, "CUSTOMER.OWNER", "acme", None),
            AssignmentFact("a-admin", 1, "PROJECT.ADMIN", "gemini", None),
        ],
    )
    alice = Subject(1, False)
    assert ask(pair, alice, "RESOURCE.UPDATE", "vm1").held_on == "acme"
    assert ask(pair, alice, "RESOURCE.UPDATE", "vm3").held_on == "gemini"


def test_a_mirrored_empty_uuid_is_not_a_target_like_the_others(policy_dir: Path) -> None:
    # r.obj == "" is true for it alone, whatever its shape
    entities = [*tree(), EntityFact("", "project", "acme")]
    pair = engines(policy_dir, entities, [AssignmentFact("a-alice", 1, "CUSTOMER.OWNER", "acme", None)])
    alice = Subject(1, False)
    assert ask(pair, alice, "RESOURCE.UPDATE", "vm1").allowed
    assert not ask(pair, alice, "RESOURCE.UPDATE", "").allowed


def test_without_lines_every_p_field_is_empty_and_may_name_a_mirrored_ancestor(copy: Path) -> None:
    # with no p line the loop binds every p field to "": g2(r.obj, p.entity) then asks whether "" is above
    edit(copy, '(r.sub.is_staff || g3(r.perm, "global") || p.user', "(g2(r.obj, p.entity) || p.user")
    entities = [*tree(), EntityFact("", "project", "acme"), EntityFact("vm9", "resource", "")]
    pair = engines(copy, entities, [])
    carol = Subject(3, False)
    assert ask(pair, carol, "RESOURCE.UPDATE", "vm9").allowed
    assert not ask(pair, carol, "RESOURCE.UPDATE", "vm1").allowed
