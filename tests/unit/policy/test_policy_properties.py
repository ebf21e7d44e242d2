"""Property tests: the Casbin model decides exactly like the plain reference reading of the access rule.

Random worlds (trees at least 8 deep, assignments that expire, PATs with scopes and bindings of the right type,
the wrong type or deleted, staff) and at least 10,000 random questions per policy; delegation and bind types are
compared for every user, permission and type.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.policy import AssignmentFact, Binding, EntityFact, PolicyEngine, Subject, TokenLimits
from service.policy.evaluator import NO_ENTITY, Evaluator
from service.policy.loader import load_rules
from service.policy.store import FactStore
from tests.unit.policy.reference import Reference

HERE = Path(__file__).resolve().parent
POLICIES = HERE.parents[2] / "policies"
DEEP = HERE / "deep_policy"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
EXAMPLES = 100
QUESTIONS = 100  # per example: EXAMPLES * QUESTIONS = 10,000 questions per policy
USERS = (1, 2, 3)


def _children(rules_dir: Path) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {}
    for child, parents in load_rules(rules_dir).entity_types.items():
        for parent in parents:
            children.setdefault(parent, []).append(child)
    return children


class World:
    """One policy directory, its engine (loaded once) and what random worlds may contain."""

    def __init__(self, directory: Path, min_depth: int) -> None:
        self.rules = load_rules(directory)
        self.engine = PolicyEngine.from_directory(directory)
        self.children = _children(directory)
        self.roots = [name for name, parents in self.rules.entity_types.items() if not parents]
        self.min_depth = min_depth
        self.permissions = [*self.rules.permissions, "NOPE.NOTHING"]
        self.roles = list(self.rules.roles)


DEFAULT = World(POLICIES, 3)
DEEP_WORLD = World(DEEP, 8)


@st.composite
def trees(draw: st.DrawFn, world: World) -> list[EntityFact]:
    """A forest whose first branch is at least ``world.min_depth`` deep, respecting the parent types."""
    entities = [EntityFact("e0", draw(st.sampled_from(world.roots)), None)]
    while len(entities) < world.min_depth:  # the spine: always the deepest nesting the types allow
        parent = entities[-1]
        kinds = world.children.get(parent.type, [])
        if not kinds:
            break
        kind = parent.type if parent.type in kinds else draw(st.sampled_from(kinds))
        entities.append(EntityFact(f"e{len(entities)}", kind, parent.uuid))
    for _ in range(draw(st.integers(0, 12))):
        parents = [e for e in entities if world.children.get(e.type)]
        parent = draw(st.sampled_from([*parents, None]))
        kind = (
            draw(st.sampled_from(world.roots)) if parent is None else draw(st.sampled_from(world.children[parent.type]))
        )
        entities.append(EntityFact(f"e{len(entities)}", kind, parent and parent.uuid))
    return entities


@st.composite
def worlds(draw: st.DrawFn, world: World) -> tuple[list[EntityFact], list[AssignmentFact]]:
    entities = draw(trees(world))
    assignments = [
        AssignmentFact(
            f"a{i}",
            draw(st.sampled_from(USERS)),
            draw(st.sampled_from(world.roles)),
            draw(st.sampled_from(entities)).uuid,
            draw(st.none() | st.integers(-2, 2).map(lambda h: T0 + timedelta(hours=h))),
        )
        for i in range(draw(st.integers(0, 12)))
    ]
    return entities, assignments


def bindings(entities: list[EntityFact], types: list[str]) -> st.SearchStrategy[Binding]:
    right = st.sampled_from(entities).map(lambda e: Binding(e.type, e.uuid))
    wrong = st.builds(Binding, st.sampled_from(types), st.sampled_from([e.uuid for e in entities]))
    deleted = st.sampled_from(entities).map(lambda e: Binding(e.type, e.uuid, deleted=True))
    return right | wrong | deleted | st.just(Binding(types[0], "gone"))


def subjects(world: World, entities: list[EntityFact]) -> st.SearchStrategy[Subject]:
    tokens = st.none() | st.builds(
        TokenLimits,
        st.frozensets(st.sampled_from(world.permissions), max_size=5),
        st.frozensets(bindings(entities, list(world.rules.entity_types)), max_size=2),
    )
    return st.builds(Subject, st.sampled_from(USERS), st.booleans(), tokens)


def _compare(world: World, data: st.DataObject, facts: tuple[list[EntityFact], list[AssignmentFact]]) -> None:
    entities, assignments = facts
    engine = world.engine
    engine.replace_facts(entities, assignments)
    reference = Reference(world.rules, entities, assignments)
    uuids = [e.uuid for e in entities]
    question = st.tuples(
        subjects(world, entities),
        st.sampled_from(world.permissions),
        st.sampled_from([*uuids, None, "gone"]),
        st.integers(-3, 3).map(lambda h: T0 + timedelta(hours=h, minutes=30)),
    )
    questions = data.draw(st.lists(question, min_size=QUESTIONS // 2, max_size=QUESTIONS // 2))
    for round_ in range(2):  # between the rounds an assignment goes: the very next decision no longer counts it
        for subject, permission, target, now in questions:  # questions repeat (at other times): the memo answers
            decision = engine.decide(subject, permission, target, now)
            expected = reference.decide(subject, permission, target, now)
            assert (decision.allowed, decision.clause) == expected, (round_, subject, permission, target, now, decision)
            if decision.allowed and decision.clause == "role":
                assert target is not None
                assert decision.assignment == reference.nearest_granting(subject.user_id, permission, target, now)
        if reference.assignments:
            gone = reference.assignments.pop(data.draw(st.integers(0, len(reference.assignments) - 1)))
            engine.remove_assignment(gone.uuid)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), facts=worlds(DEFAULT))
def test_default_policy_decides_like_the_reference(
    data: st.DataObject, facts: tuple[list[EntityFact], list[AssignmentFact]]
) -> None:
    _compare(DEFAULT, data, facts)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), facts=worlds(DEEP_WORLD))
def test_deep_trees_decide_like_the_reference(
    data: st.DataObject, facts: tuple[list[EntityFact], list[AssignmentFact]]
) -> None:
    _compare(DEEP_WORLD, data, facts)
    assert len(DEEP_WORLD.engine.ancestors(f"e{DEEP_WORLD.min_depth - 1}")) >= DEEP_WORLD.min_depth


def _compare_delegation(world: World, facts: tuple[list[EntityFact], list[AssignmentFact]], now: datetime) -> None:
    entities, assignments = facts
    engine = world.engine
    engine.replace_facts(entities, assignments)
    reference = Reference(world.rules, entities, assignments)
    for user in USERS:
        for staff in (False, True):
            assert engine.delegable_scopes(user, staff, now) == reference.delegable_scopes(user, staff, now)
            assert engine.binding_targets(user, staff, now) == reference.binding_targets(user, staff, now)
            for permission in world.permissions:
                for entity in entities:
                    expected = reference.may_delegate(user, staff, permission, entity.uuid, now)
                    assert engine.may_delegate(user, staff, permission, entity.uuid, now) is expected
    for permission in world.permissions:
        for entity_type in world.rules.entity_types:
            spec = world.rules.permissions.get(permission)
            assert engine.may_bind(permission, entity_type) is (spec is not None and entity_type in spec.bind_types)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=worlds(DEFAULT), hour=st.integers(-3, 3))
def test_default_policy_delegates_like_the_reference(
    facts: tuple[list[EntityFact], list[AssignmentFact]], hour: int
) -> None:
    _compare_delegation(DEFAULT, facts, T0 + timedelta(hours=hour, minutes=30))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=worlds(DEEP_WORLD), hour=st.integers(-3, 3))
def test_deep_policy_delegates_like_the_reference(
    facts: tuple[list[EntityFact], list[AssignmentFact]], hour: int
) -> None:
    _compare_delegation(DEEP_WORLD, facts, T0 + timedelta(hours=hour, minutes=30))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), facts=worlds(DEFAULT))
def test_the_enforcers_own_loop_answers_as_pycasbins_enforce_ex(
    data: st.DataObject, facts: tuple[list[EntityFact], list[AssignmentFact]]
) -> None:
    """The compiled evaluator runs ``enforce_ex``'s loop itself: same answer and same p line as pycasbin's."""
    entities, assignments = facts
    store = FactStore()
    store.replace(entities, assignments)
    lean, stock = Evaluator(DEFAULT.rules, store), Evaluator(DEFAULT.rules, store, compiled=False)
    uuids = [e.uuid for e in entities]
    question = st.tuples(
        subjects(DEFAULT, entities),
        st.sampled_from(DEFAULT.permissions),
        st.sampled_from([*uuids, NO_ENTITY, "gone"]),
        st.integers(-3, 3).map(lambda h: (T0 + timedelta(hours=h, minutes=30)).timestamp()),
    )
    for subject, permission, target, now in data.draw(st.lists(question, min_size=50, max_size=50)):
        assert lean.check(subject, permission, target, now) == stock.check(subject, permission, target, now)
        assert lean.delegate(subject, permission, target, now) == stock.delegate(subject, permission, target, now)
        for entity_type in DEFAULT.rules.entity_types:
            assert lean.target(subject, permission, entity_type, now) == stock.target(
                subject, permission, entity_type, now
            )
            assert lean.bind(permission, entity_type) == stock.bind(permission, entity_type)


def test_a_matcher_in_which_pycasbin_finds_eval_is_left_to_pycasbins_own_loop(tmp_path: Path) -> None:
    """pycasbin substitutes each policy line into a matcher naming ``eval(``, even inside a string literal."""
    policy = tmp_path / "policies"
    shutil.copytree(POLICIES, policy)
    model = policy / "model.conf"
    text = model.read_text()
    bind = "m3 = r3.perm == p4.perm && r3.type == p4.bind_type"
    assert bind in text
    model.write_text(text.replace(bind, f'{bind} && "eval(p4.perm)" != "(CUSTOMER.CONTACT_UPDATE)"'))
    rules = load_rules(policy)
    lean, stock = Evaluator(rules, FactStore()), Evaluator(rules, FactStore(), compiled=False)
    answers = {
        (permission, entity_type): (lean.bind(permission, entity_type), stock.bind(permission, entity_type))
        for permission in rules.permissions
        for entity_type in rules.entity_types
    }
    assert [key for key, (mine, theirs) in answers.items() if mine != theirs] == []
    assert answers["CUSTOMER.CONTACT_UPDATE", "customer"] == (False, False)
