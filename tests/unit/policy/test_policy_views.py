"""What the check matcher sees of its target, and the allows the engine shares between targets of the same shape.

The analysis accepts only the uses of ``r.obj`` under which two targets of the same shape are alike to the
matcher; every other use leaves each target its own question. The engine tests show an allow answered for a new
target without Casbin (``Evaluator.check`` counted), such answers memoised as asked only by chance (so a stream
of new targets does not churn the memo), denials never shared, and an edited matcher that compares
the target with a constant answered right for both of two targets of one shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.policy import AssignmentFact, Binding, EntityFact, PolicyEngine, Subject, TokenLimits
from service.policy import evaluator as evaluator_module
from service.policy.views import TargetView, target_view
from tests.unit.policy.test_policy_decisions import NOW

P = ("p_user", "p_role", "p_entity", "p_expires", "p_id")
SHIPPED = TargetView(columns=(2,), token_fields=(("bindings", "uuid"),), constants=frozenset())


def view(expr: str) -> TargetView | None:
    return target_view(expr, "r_obj", "r_token", P)


def test_the_shipped_matcher_sees_the_target_through_assignments_and_bindings(policy_dir: Path) -> None:
    assert PolicyEngine.from_directory(policy_dir)._evaluator.target_view == SHIPPED


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('r_obj == "" or entity_exists(r_obj) and g2(r_obj, p_entity)', TargetView((2,), (), frozenset())),
        ('"" != r_obj and g2(r_obj, p_id)', TargetView((4,), (), frozenset())),
        ('g2(r_obj, "root-uuid")', TargetView((), (), frozenset({"root-uuid"}))),
        (
            "[b for b in r_token.bindings if g2(r_obj, b.uuid)] != []",
            TargetView((), (("bindings", "uuid"),), frozenset()),
        ),
        ("p_user == r_sub.user_id", TargetView((), (), frozenset())),  # the target unused: every one is alike
    ],
)
def test_uses_that_keep_targets_of_one_shape_alike(expr: str, expected: TargetView) -> None:
    assert view(expr) == expected


@pytest.mark.parametrize(
    "expr",
    [
        'r_obj == "9f1c-uuid"',  # a particular target
        'r_obj in ("a", "b")',
        "g4(r_obj, p_role)",  # another function of the target
        "g2(p_entity, r_obj)",  # the target as the ancestor
        "g2(r_obj, r_sub.home)",  # an ancestor from nowhere the view can list
        "g2(r_obj, p_entity + r_perm)",
        "len(r_obj) > 3",
        "entity_exists(r_obj, p_entity)",
        "[r_obj for r_obj in r_token.bindings] != []",  # the name bound again
        "[b for b in r_token.bindings if g2(r_obj, b.uuid)] != [] and [b for b in r_sub.others] != []",
        "[c for c in r_token.bindings for b in c.children if g2(r_obj, b.uuid)] != []",  # not the token's own items
        "g2(r_obj, b.uuid) and [b for b in r_token.bindings] != []",  # b outside the comprehension binding it
    ],
)
def test_any_other_use_of_the_target_gives_no_view(expr: str) -> None:
    assert view(expr) is None


def test_reachable_entities_come_from_lines_token_and_constants() -> None:
    limits = TokenLimits(frozenset(), frozenset({Binding("project", "p1"), Binding("customer", "c1", True)}))
    reached = TargetView((2,), (("bindings", "uuid"),), frozenset({"k"})).reachable([[1, "R", "e1", 0.0, "a"]], limits)
    assert reached == {"e1", "p1", "c1", "k"}
    assert TargetView((), (("bindings", "nope"),), frozenset()).reachable([], limits) is None
    assert TargetView.shape(("vm", "p1", "c1"), {"c1", "p1", "elsewhere"}) == ("p1", "c1")


@pytest.fixture(name="checks")
def fx_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The target of every question Casbin is asked to check."""
    asked: list[str] = []
    check = evaluator_module.Evaluator.check

    def counted(self: evaluator_module.Evaluator, subject: Subject, permission: str, entity: str, now: float) -> Any:
        asked.append(entity)
        return check(self, subject, permission, entity, now)

    monkeypatch.setattr(evaluator_module.Evaluator, "check", counted)
    return asked


def world(policy_dir: Path) -> PolicyEngine:
    """acme ── apollo ── vm1, vm2; acme ── gemini ── vm3; alice owns acme, bob administers apollo."""
    engine = PolicyEngine.from_directory(policy_dir)
    tree = [("acme", "customer", None), ("apollo", "project", "acme"), ("gemini", "project", "acme")]
    tree += [("vm1", "resource", "apollo"), ("vm2", "resource", "apollo"), ("vm3", "resource", "gemini")]
    engine.replace_facts(
        [EntityFact(uuid, kind, parent) for uuid, kind, parent in tree],
        [
            AssignmentFact("a-alice", 1, "CUSTOMER.OWNER", "acme", None),
            AssignmentFact("a-bob", 2, "PROJECT.ADMIN", "apollo", None),
        ],
    )
    return engine


ALICE, BOB = Subject(1, False), Subject(2, False)


def test_an_allow_is_shared_by_targets_of_the_same_shape(policy_dir: Path, checks: list[str]) -> None:
    engine = world(policy_dir)
    first = engine.decide(ALICE, "RESOURCE.UPDATE", "vm1", NOW)
    assert first.allowed and first.held_on == "acme"
    for target in ("vm2", "vm3", "apollo"):  # every one sees acme alone of alice's
        assert engine.decide(ALICE, "RESOURCE.UPDATE", target, NOW) is first
    assert checks == ["vm1"]
    bound = Subject(1, False, TokenLimits(frozenset({"RESOURCE.UPDATE"}), frozenset({Binding("project", "apollo")})))
    assert engine.decide(bound, "RESOURCE.UPDATE", "vm1", NOW).allowed
    assert engine.decide(bound, "RESOURCE.UPDATE", "vm2", NOW).allowed  # vm1's shape: apollo and acme
    assert checks == ["vm1", "vm1"]
    assert not engine.decide(bound, "RESOURCE.UPDATE", "vm3", NOW).allowed  # not below the binding: another shape
    assert checks == ["vm1", "vm1", "vm3"]


def test_a_denial_is_never_shared(policy_dir: Path, checks: list[str]) -> None:
    engine = world(policy_dir)
    assert not engine.decide(BOB, "CUSTOMER.UPDATE", "vm1", NOW).allowed
    assert not engine.decide(BOB, "CUSTOMER.UPDATE", "vm2", NOW).allowed
    assert checks == ["vm1", "vm2"]  # a reason may name its target: each denial is Casbin's own


def test_a_role_granted_since_gives_another_shape(policy_dir: Path) -> None:
    engine = world(policy_dir)
    assert engine.decide(BOB, "RESOURCE.TERMINATE", "vm1", NOW).held_on == "apollo"
    assert not engine.decide(BOB, "RESOURCE.TERMINATE", "vm3", NOW).allowed
    engine.put_assignment(AssignmentFact("a-bob-2", 2, "PROJECT.ADMIN", "gemini", None))
    assert engine.decide(BOB, "RESOURCE.TERMINATE", "vm3", NOW).held_on == "gemini"
    assert engine.decide(BOB, "RESOURCE.TERMINATE", "vm2", NOW).held_on == "apollo"


def test_a_matcher_comparing_the_target_with_a_constant_answers_each_target(copy: Path) -> None:
    model = copy / "model.conf"
    text = model.read_text()
    assert "\nm2 = " in text
    model.write_text(text.replace("\nm2 = ", ' \\\n && r.obj != "vm2"\nm2 = ', 1))
    engine = world(copy)
    assert engine._evaluator.target_view is None
    assert engine.decide(ALICE, "RESOURCE.UPDATE", "vm1", NOW).allowed
    assert not engine.decide(ALICE, "RESOURCE.UPDATE", "vm2", NOW).allowed  # the same shape as vm1: not the answer


def count_shapes(engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The targets whose shape the engine works out from now on."""
    shaped: list[str] = []
    shape = engine._shape
    monkeypatch.setattr(
        engine, "_shape", lambda subject, entity, epoch: shaped.append(entity) or shape(subject, entity, epoch)
    )
    return shaped


def test_a_question_answered_by_shape_is_memoised_as_asked_when_admitted(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = world(policy_dir)
    engine.decide(ALICE, "RESOURCE.UPDATE", "vm1", NOW)
    engine.shape_admission = 1.0
    shaped = count_shapes(engine, monkeypatch)
    first = engine.decide(ALICE, "RESOURCE.UPDATE", "vm3", NOW)
    assert engine.decide(ALICE, "RESOURCE.UPDATE", "vm3", NOW) is first
    assert shaped == ["vm3"]  # the repeat was answered as asked, without working out the shape again


def test_a_target_asked_about_again_and_again_is_soon_memoised_as_asked(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = world(policy_dir)
    engine.decide(ALICE, "RESOURCE.UPDATE", "vm1", NOW)
    shaped = count_shapes(engine, monkeypatch)
    for _ in range(300):  # admitted one time in eight: never in 300 asks has a chance of (7/8)^300, about 4e-18
        assert engine.decide(ALICE, "RESOURCE.UPDATE", "vm3", NOW).allowed
    assert 1 <= len(shaped) < 300
    asked = len(shaped)
    assert engine.decide(ALICE, "RESOURCE.UPDATE", "vm3", NOW).allowed
    assert len(shaped) == asked  # memoised as asked from then on


def forty_resources(policy_dir: Path) -> PolicyEngine:
    """An engine with a memo of 8: vm0..vm39 in project apollo of customer acme, which alice owns."""
    engine = PolicyEngine.from_directory(policy_dir, memo_size=8)
    engine.replace_facts(
        [EntityFact("acme", "customer", None), EntityFact("apollo", "project", "acme")]
        + [EntityFact(f"vm{n}", "resource", "apollo") for n in range(40)],
        [AssignmentFact("a-alice", 1, "CUSTOMER.OWNER", "acme", None)],
    )
    return engine


def test_answers_found_by_shape_do_not_push_out_the_memoised_answers(policy_dir: Path, checks: list[str]) -> None:
    def bobs_denial_after_alice_asks_about_40_resources(admission: float) -> list[str]:
        engine = forty_resources(policy_dir)
        engine.shape_admission = admission
        assert engine.decide(ALICE, "RESOURCE.UPDATE", "vm0", NOW).allowed
        assert not engine.decide(BOB, "RESOURCE.UPDATE", "vm0", NOW).allowed
        for n in range(1, 40):
            assert engine.decide(ALICE, "RESOURCE.UPDATE", f"vm{n}", NOW).allowed
        checks.clear()
        assert not engine.decide(BOB, "RESOURCE.UPDATE", "vm0", NOW).allowed
        return list(checks)

    assert bobs_denial_after_alice_asks_about_40_resources(admission=0.0) == []  # still memoised
    assert bobs_denial_after_alice_asks_about_40_resources(admission=1.0) == ["vm0"]  # pushed out: Casbin again


def test_questions_about_ever_new_targets_do_not_push_out_the_allows_by_shape(
    policy_dir: Path, checks: list[str]
) -> None:
    engine = forty_resources(policy_dir)
    assert engine.decide(ALICE, "RESOURCE.UPDATE", "vm0", NOW).allowed
    for n in range(1, 40):  # each denial Casbin's, memoised as asked: the memo of 8 turns over many times
        assert not engine.decide(BOB, "RESOURCE.UPDATE", f"vm{n}", NOW).allowed
        assert engine.decide(ALICE, "RESOURCE.UPDATE", f"vm{n}", NOW).allowed
    assert checks == ["vm0"] + [f"vm{n}" for n in range(1, 40)]  # Alice's answered by the shape of vm0
