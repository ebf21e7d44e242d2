"""The decision memo under churn: a change forgets what it can affect, and no answer differs from a fresh engine's.

The randomized test interleaves every kind of fact change with questions and compares each answer of memoising
engines (a small memo, so entries are evicted and users share epochs; the default size; and the default size
memoising no answer found by shape as asked) with an engine that memoises nothing, on the same facts. The direct
tests show which entries a change keeps: a memoised decision is returned as the very same object, and every answer
not memoised is one more question to Casbin (``Evaluator.check``, counted).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.policy import AssignmentFact, Binding, Decision, EntityFact, PolicyEngine, Subject, TokenLimits
from service.policy import engine as engine_module
from service.policy import evaluator as evaluator_module
from service.policy.store import FactStore
from tests.unit.policy.reference import Reference

NOW = datetime(2030, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
STEPS = 1_000  # per seed
QUESTIONS = 12  # per step
USERS = [1, 2, 3, 4, 5, 6, 65, 1 + engine_module.EPOCHS, 2 + engine_module.EPOCHS]  # 1 and 2 share their epochs
TYPES = ["org", "folder", "item"]
ROLES = ["ORG.ADMIN", "FOLDER.EDITOR", "FOLDER.VIEWER"]
PERMISSIONS = ["FOLDER.READ", "FOLDER.WRITE", "FOLDER.SHARE", "STAFF.ACCESS", "NOPE.NOTHING"]


class Churn:
    """Random facts and questions, applied alike to every engine; ``entities`` is the reference copy of the tree."""

    def __init__(self, seed: int, engines: list[PolicyEngine], uuids: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.uuids = uuids  # at most this many uuids in all, each registered, removed and registered again
        self.engines = engines
        self.rules = engines[0].rules
        self.entities: dict[str, EntityFact] = {}
        self.named = ["n0"]  # every uuid used so far, mirrored or not, and the next new one
        self.now = NOW

    def apply(self, change: Callable[[PolicyEngine], None]) -> bool:
        """Apply ``change`` to every engine; whether they refused it (a cycle: all of them or none)."""
        refused = set()
        for engine in self.engines:
            try:
                change(engine)
            except ValueError:
                refused.add(True)
            else:
                refused.add(False)
        assert len(refused) == 1
        return refused.pop()

    def step(self) -> None:
        """One change: mostly new entities and role changes, now and then a move, a removal or the clock moving."""
        rng = self.rng
        kind = rng.choices(["entity", "remove-entity", "assignment", "remove-assignment", "time"], [6, 2, 3, 1, 3])[0]
        if kind == "entity":
            room = self.uuids is None or len(self.named) <= self.uuids
            new = len(self.named) == 1 or (rng.random() < 0.7 and room)
            uuid = self.named[-1] if new else rng.choice(self.named[:-1])  # a new uuid, a mirrored or a removed one
            unmirrored = [named for named in self.named if named not in self.entities and named != uuid]
            if new:
                self.named.append(f"n{len(self.named)}")
            parents = [*self.entities] if rng.random() < 0.8 else unmirrored  # mirrored, or not (yet, or any more)
            fact = EntityFact(uuid, rng.choice(TYPES), rng.choice([None, *parents]))
            if uuid in self.entities and rng.random() < 0.3:
                fact = self.entities[uuid]  # the same fact again
            cycle = fact.parent is not None and uuid in self.chain(fact.parent, {**self.entities, uuid: fact})
            assert self.apply(lambda engine: engine.put_entity(fact)) is cycle
            if not cycle:
                self.entities[uuid] = fact
        elif kind == "remove-entity":
            uuid = rng.choice(self.named)
            self.apply(lambda engine: engine.remove_entity(uuid))
            self.entities.pop(uuid, None)
        elif kind == "assignment":  # added, or changed (role, holder, entity, expiry) under the same uuid
            expiry = rng.choice([None, None, self.now + rng.randint(-4, 12) * MINUTE / 2])
            on = rng.choice(self.named[:8] if rng.random() < 0.7 else self.named)  # the oldest hold the most below
            fact = AssignmentFact(f"a{rng.randrange(30)}", rng.choice(USERS), rng.choice(ROLES), on, expiry)
            self.apply(lambda engine: engine.put_assignment(fact))
        elif kind == "remove-assignment":
            uuid = f"a{rng.randrange(30)}"
            self.apply(lambda engine: engine.remove_assignment(uuid))
        else:  # assignments expire as the clock moves on; now and then it goes back
            self.now += rng.choice([MINUTE, MINUTE, -MINUTE])

    def chain(self, uuid: str, entities: dict[str, EntityFact] | None = None) -> list[str]:
        """The reference ancestor chain of ``uuid`` over the facts applied so far (or ``entities``)."""
        return Reference(self.rules, (self.entities if entities is None else entities).values(), []).chain(uuid)

    def question(self) -> tuple[Subject, str, str | None]:
        """Mostly about a mirrored entity; else globally, or about a uuid that is not mirrored."""
        rng = self.rng
        mirrored = [*self.entities] or self.named
        token = None
        if rng.random() < 0.3:
            bound = rng.choice(mirrored)
            bindings = frozenset({Binding(rng.choice(TYPES), bound, rng.random() < 0.2)} if rng.random() < 0.7 else ())
            token = TokenLimits(frozenset(rng.sample(PERMISSIONS, 3)), bindings)
        subject = Subject(rng.choice(USERS), rng.random() < 0.1, token)
        target = rng.choice(mirrored) if rng.random() < 0.8 else rng.choice([None, "gone", *self.named])
        return subject, rng.choice(PERMISSIONS), target


def _questions(churn: Churn) -> Iterator[tuple[Subject, str, str | None]]:
    """Questions that repeat (so the memo answers), mixed with new ones and with old ones about another target
    (so allows memoised for a target of the same shape answer them: see ``service.policy.views``)."""
    asked = [churn.question() for _ in range(40)]
    while True:
        if churn.rng.random() < 0.05:
            asked[churn.rng.randrange(len(asked))] = churn.question()
        subject, permission, target = churn.rng.choice(asked)
        if churn.rng.random() < 0.3:
            target = churn.rng.choice([*churn.entities] or churn.named)
        yield subject, permission, target


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_memoised_answers_equal_fresh_ones_under_churn(deep_policy_dir: Path, seed: int) -> None:
    _compare_under_churn(deep_policy_dir, seed, uuids=None)


@pytest.mark.parametrize("seed", range(4, 12))
def test_memoised_answers_equal_fresh_ones_when_few_uuids_come_and_go(deep_policy_dir: Path, seed: int) -> None:
    """Eight uuids in all: each is removed and registered again, under other parents and as other types, often."""
    _compare_under_churn(deep_policy_dir, seed, uuids=8)


def _compare_under_churn(deep_policy_dir: Path, seed: int, uuids: int | None) -> None:
    # memo size, and the chance that an answer found by shape is memoised as asked (each extreme: reproducible)
    kinds = {"small": (64, 1.0), "default": (65_536, 1.0), "unadmitted": (65_536, 0.0), "fresh": (0, 1.0)}
    engines = {name: PolicyEngine.from_directory(deep_policy_dir, size) for name, (size, _) in kinds.items()}
    for name, (_, admission) in kinds.items():
        engines[name].shape_admission = admission
    small, default, _, fresh = engines.values()
    churn = Churn(seed, list(engines.values()), uuids)
    questions = _questions(churn)
    last: dict[tuple[Subject, str, str | None], tuple[int, Decision]] = {}  # question -> generation, fresh answer
    answered: dict[tuple[str, tuple[Subject, str, str | None]], Decision] = {}  # (engine, question) -> its answer
    targets: dict[tuple[str, int], tuple[Decision, str | None]] = {}  # (engine, id) -> an answer, its first target
    differences, memoised, shared = [], 0, 0
    for step in range(STEPS):
        churn.step()
        for _ in range(QUESTIONS):
            question = next(questions)
            expected = fresh.decide(*question, churn.now)
            for name in ("small", "default", "unadmitted"):
                decision = engines[name].decide(*question, churn.now)
                memoised += answered.get((name, question)) is decision
                answered[name, question] = decision
                first = targets.setdefault((name, id(decision)), (decision, question[2]))[1]  # keeps it alive
                shared += first != question[2]
                if decision != expected:
                    differences.append((step, name, question, decision, expected))
            seen = last.get(question)
            if seen is not None and seen[0] == default.generation:  # the generation stood still: so did the answer
                assert seen[1] == expected, (step, question)
            last[question] = (default.generation, expected)
        uuid = churn.rng.choice(churn.named)
        assert small.ancestors(uuid) == churn.chain(uuid), (step, uuid)
    assert differences == []
    assert memoised > STEPS * QUESTIONS // 2  # of 3 * STEPS * QUESTIONS answers: the memo had its share
    assert shared > STEPS // 10  # and allows about one target answered others of its shape


@pytest.fixture(name="checks")
def fx_checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every question Casbin is asked to check, as (subject, permission, entity)."""
    asked: list[tuple[Any, ...]] = []
    check = evaluator_module.Evaluator.check

    def counted(self: evaluator_module.Evaluator, subject: Subject, permission: str, entity: str, now: float) -> Any:
        asked.append((subject, permission, entity))
        return check(self, subject, permission, entity, now)

    monkeypatch.setattr(evaluator_module.Evaluator, "check", counted)
    return asked


ALICE, BOB = Subject(1, False), Subject(2, False)


@pytest.fixture(name="engine")
def fx_engine(deep_policy_dir: Path) -> PolicyEngine:
    """org ── f1 ── f2, and a lone org2; alice edits f1, bob views f2."""
    engine = PolicyEngine.from_directory(deep_policy_dir)
    engine.replace_facts(
        [
            EntityFact("org", "org", None),
            EntityFact("f1", "folder", "org"),
            EntityFact("f2", "folder", "f1"),
            EntityFact("org2", "org", None),
        ],
        [
            AssignmentFact("a-alice", 1, "FOLDER.EDITOR", "f1", None),
            AssignmentFact("a-bob", 2, "FOLDER.VIEWER", "f2", None),
        ],
    )
    return engine


def test_a_role_change_for_one_user_keeps_the_others_decisions(
    engine: PolicyEngine, checks: list[tuple[Any, ...]]
) -> None:
    alice = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    bob = engine.decide(BOB, "FOLDER.READ", "f2", NOW)
    engine.put_assignment(AssignmentFact("a-alice-2", 1, "FOLDER.VIEWER", "org2", None))
    asked = len(checks)
    assert engine.decide(BOB, "FOLDER.READ", "f2", NOW) is bob
    assert len(checks) == asked  # bob's answer came from the memo
    again = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    assert len(checks) == asked + 1  # alice's was asked again
    assert again == alice


def test_a_removed_role_forgets_its_holders_decisions_only(engine: PolicyEngine) -> None:
    alice = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    bob = engine.decide(BOB, "FOLDER.READ", "f2", NOW)
    engine.remove_assignment("a-alice")
    assert not engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed
    assert alice.allowed
    assert engine.decide(BOB, "FOLDER.READ", "f2", NOW) is bob


def test_an_assignment_given_to_another_user_forgets_both_holders(engine: PolicyEngine) -> None:
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed
    assert not engine.decide(BOB, "FOLDER.WRITE", "f2", NOW).allowed
    engine.put_assignment(AssignmentFact("a-alice", 2, "FOLDER.EDITOR", "f1", None))  # the same uuid, now bob's
    assert not engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed
    assert engine.decide(BOB, "FOLDER.WRITE", "f2", NOW).allowed


def test_registering_an_entity_keeps_unrelated_decisions(engine: PolicyEngine, checks: list[tuple[Any, ...]]) -> None:
    alice = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    bob = engine.decide(BOB, "FOLDER.READ", "f2", NOW)
    engine.put_entity(EntityFact("f3", "folder", "f2"))
    asked = len(checks)
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW) is alice
    assert engine.decide(BOB, "FOLDER.READ", "f2", NOW) is bob
    assert len(checks) == asked
    assert engine.decide(BOB, "FOLDER.READ", "f3", NOW).allowed  # the new entity inherits bob's role on f2


def test_a_decision_about_an_unknown_entity_is_not_memoised(engine: PolicyEngine) -> None:
    first = engine.decide(BOB, "FOLDER.READ", "f3", NOW)
    assert first.clause == "unknown-entity"
    assert engine.decide(BOB, "FOLDER.READ", "f3", NOW) is not first
    engine.put_entity(EntityFact("f3", "folder", "f2"))
    assert engine.decide(BOB, "FOLDER.READ", "f3", NOW).allowed


def test_an_entity_registered_after_its_child_reaches_the_child(engine: PolicyEngine) -> None:
    engine.put_entity(EntityFact("f4", "folder", "f3"))  # f3 is not mirrored yet
    denied = engine.decide(BOB, "FOLDER.READ", "f4", NOW)
    assert denied.clause == "role"
    engine.put_entity(EntityFact("f3", "folder", "f2"))
    assert engine.ancestors("f4") == ["f4", "f3", "f2", "f1", "org"]
    assert engine.decide(BOB, "FOLDER.READ", "f4", NOW).allowed


def test_an_entity_registered_again_after_removal_reaches_its_children(engine: PolicyEngine) -> None:
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed
    engine.remove_entity("f1")
    assert not engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed
    engine.put_entity(EntityFact("f1", "folder", "org"))
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed


def test_removing_a_leaf_keeps_the_decisions_about_other_entities(
    engine: PolicyEngine, checks: list[tuple[Any, ...]]
) -> None:
    engine.put_entity(EntityFact("f3", "folder", "f2"))
    alice = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    assert engine.decide(BOB, "FOLDER.READ", "f3", NOW).allowed
    engine.remove_entity("f3")
    asked = len(checks)
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW) is alice
    assert len(checks) == asked  # answered from the memo
    assert engine.decide(BOB, "FOLDER.READ", "f3", NOW).clause == "unknown-entity"  # not the memoised allow
    assert engine.ancestors("f3") == []


def test_a_leaf_registered_again_under_another_parent_is_decided_afresh(engine: PolicyEngine) -> None:
    engine.put_entity(EntityFact("f3", "folder", "f2"))
    assert engine.decide(BOB, "FOLDER.READ", "f3", NOW).allowed
    engine.remove_entity("f3")
    engine.put_entity(EntityFact("f3", "folder", "org2"))  # a host system keeps its uuids
    assert engine.ancestors("f3") == ["f3", "org2"]
    assert not engine.decide(BOB, "FOLDER.READ", "f3", NOW).allowed
    assert not engine.decide(BOB, "FOLDER.READ", "f3", NOW).allowed  # asked twice: no memoised answer of before


def test_a_leaf_registered_again_as_another_type_is_not_answered_from_its_old_shape(engine: PolicyEngine) -> None:
    bound_to_item = Subject(1, False, TokenLimits(frozenset({"FOLDER.READ"}), frozenset({Binding("item", "f3")})))
    engine.put_entity(EntityFact("f3", "item", "f1"))
    assert engine.decide(bound_to_item, "FOLDER.READ", "f3", NOW).allowed  # alice edits f1; the token is bound to f3
    engine.remove_entity("f3")
    engine.put_entity(EntityFact("f3", "folder", "f1"))  # the uuid again, now a folder: the binding names an item
    engine.put_entity(EntityFact("f4", "item", "f3"))  # a new entity of the allow's shape (f3, f1)
    for target in ("f3", "f4"):
        assert engine.decide(bound_to_item, "FOLDER.READ", target, NOW).clause == "token-binding"


def test_removing_an_entity_with_children_forgets_every_decision(
    engine: PolicyEngine, checks: list[tuple[Any, ...]]
) -> None:
    bob = engine.decide(BOB, "FOLDER.READ", "org2", NOW)
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed
    engine.remove_entity("f1")
    asked = len(checks)
    assert engine.decide(BOB, "FOLDER.READ", "org2", NOW) == bob
    assert len(checks) == asked + 1  # asked again
    assert not engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed  # f2 lost f1, where alice's role was


def test_after_many_leaf_removals_everything_is_forgotten(
    engine: PolicyEngine, checks: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "REMOVED_LEAVES", 3)
    alice = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    for n in range(3):
        engine.put_entity(EntityFact(f"leaf{n}", "folder", "org"))
        engine.remove_entity(f"leaf{n}")
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW) is alice
    engine.put_entity(EntityFact("leaf3", "folder", "org"))
    engine.remove_entity("leaf3")  # one more than the set holds
    asked = len(checks)
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW) == alice
    assert len(checks) == asked + 1


def test_removing_an_entity_that_is_not_mirrored_changes_nothing(engine: PolicyEngine) -> None:
    alice = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    generation = engine.generation
    engine.remove_entity("never-mirrored")
    assert engine.generation == generation
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW) is alice


def test_moving_an_entity_changes_the_decisions_on_its_subtree(engine: PolicyEngine) -> None:
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed
    engine.put_entity(EntityFact("f2", "folder", "org2"))
    assert not engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW).allowed


def test_an_expiry_given_to_one_user_ends_their_grant_on_time(engine: PolicyEngine) -> None:
    bob = engine.decide(BOB, "FOLDER.READ", "f2", NOW)
    engine.put_assignment(AssignmentFact("a-alice-short", 1, "ORG.ADMIN", "org2", NOW + MINUTE))
    assert engine.decide(BOB, "FOLDER.READ", "f2", NOW) is bob
    assert engine.decide(ALICE, "FOLDER.READ", "org2", NOW).allowed
    assert not engine.decide(ALICE, "FOLDER.READ", "org2", NOW + 2 * MINUTE).allowed
    assert engine.decide(ALICE, "FOLDER.READ", "org2", NOW).allowed  # the clock going back is honoured too


def test_the_same_entity_fact_again_changes_nothing_memoised(engine: PolicyEngine) -> None:
    alice = engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW)
    engine.put_entity(EntityFact("f1", "folder", "org"))
    assert engine.decide(ALICE, "FOLDER.WRITE", "f2", NOW) is alice


def test_users_sharing_an_epoch_are_answered_from_their_own_facts(deep_policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(deep_policy_dir, memo_size=4)  # users 1 and 5 share an epoch
    engine.replace_facts([EntityFact("org", "org", None)], [AssignmentFact("a1", 1, "ORG.ADMIN", "org", None)])
    assert engine.decide(ALICE, "FOLDER.READ", "org", NOW).allowed
    engine.put_assignment(AssignmentFact("a5", 5, "ORG.ADMIN", "org", None))
    assert engine.decide(ALICE, "FOLDER.READ", "org", NOW).allowed
    assert engine.decide(Subject(5, False), "FOLDER.READ", "org", NOW).allowed
    engine.remove_assignment("a1")
    assert not engine.decide(ALICE, "FOLDER.READ", "org", NOW).allowed


def test_every_fact_change_moves_the_generation(engine: PolicyEngine) -> None:
    seen = [engine.generation]
    for change in (
        lambda: engine.put_entity(EntityFact("f3", "folder", "f2")),  # a new leaf
        lambda: engine.put_entity(EntityFact("f3", "folder", "f1")),  # moved
        lambda: engine.remove_entity("f3"),
        lambda: engine.put_assignment(AssignmentFact("a-x", 3, "FOLDER.VIEWER", "f1", None)),
        lambda: engine.remove_assignment("a-x"),
    ):
        change()
        seen.append(engine.generation)
    assert seen == sorted(set(seen))


# -- the fact store: which changes reach other entities' chains --------------------------------------------


@pytest.fixture(name="store")
def fx_store() -> FactStore:
    store = FactStore()
    store.replace([EntityFact("org", "org", None), EntityFact("f1", "folder", "org")], [])
    return store


def test_a_new_leaf_reaches_nothing_else(store: FactStore) -> None:
    cached = store.chain("f1")
    assert store.put_entity(EntityFact("f2", "folder", "f1")) is False
    assert store.chain("f1") is cached  # the cached chain was kept


def test_a_moved_or_retyped_entity_reaches_others(store: FactStore) -> None:
    assert store.put_entity(EntityFact("f1", "folder", None)) is True
    assert store.put_entity(EntityFact("f1", "org", None)) is True


def test_an_unchanged_fact_reaches_nothing(store: FactStore) -> None:
    assert store.put_entity(EntityFact("f1", "folder", "org")) is False


def test_a_parent_named_before_it_is_mirrored_reaches_its_child(store: FactStore) -> None:
    store.put_entity(EntityFact("f3", "folder", "f2"))
    assert store.chain("f3") == ("f3",)
    assert store.put_entity(EntityFact("f2", "folder", "f1")) is True
    assert store.chain("f3") == ("f3", "f2", "f1", "org")


def test_a_removed_parent_registered_again_reaches_its_children_after_many_removals(store: FactStore) -> None:
    store.put_entity(EntityFact("f2", "folder", "f1"))
    assert store.remove_entity("f1") is True  # f2 names it
    for n in range(200):
        store.put_entity(EntityFact(f"leaf{n}", "folder", "org"))
        assert store.remove_entity(f"leaf{n}") is False  # nobody names a leaf
    assert store.put_entity(EntityFact("f1", "folder", "org")) is True
    assert store.chain("f2") == ("f2", "f1", "org")


def test_a_leaf_removed_drops_its_own_chain_only(store: FactStore) -> None:
    store.put_entity(EntityFact("f2", "folder", "f1"))
    cached = store.chain("f1")
    assert store.chain("f2") == ("f2", "f1", "org")
    assert store.remove_entity("f2") is False
    assert store.chain("f1") is cached
    assert store.chain("f2") == ()


def test_a_parent_whose_last_child_moved_away_is_a_leaf(store: FactStore) -> None:
    store.put_entity(EntityFact("f2", "folder", "f1"))
    store.put_entity(EntityFact("f2", "folder", "org"))  # f1 is named by nobody now
    assert store.remove_entity("f1") is False
    assert store.chain("f2") == ("f2", "org")


def test_the_assignments_held_on_an_entity_follow_grants_and_revocations(store: FactStore) -> None:
    alice_f1 = AssignmentFact("a1", 1, "FOLDER.EDITOR", "f1", None)
    bob_f1 = AssignmentFact("a2", 2, "FOLDER.VIEWER", "f1", None)
    store.put_assignment(alice_f1)
    store.put_assignment(bob_f1)
    store.put_assignment(AssignmentFact("a3", 1, "ORG.ADMIN", "org", None))
    assert sorted(a.uuid for a in store.held_on_entity("f1")) == ["a1", "a2"]
    assert list(store.held_on(1, "f1")) == [alice_f1]
    store.remove_assignment("a1")
    assert store.held_on_entity("f1") == [bob_f1]
    assert list(store.held_on(1, "f1")) == []


def test_a_chain_through_a_cycle_given_to_replace_does_not_depend_on_who_asked_first() -> None:
    store = FactStore()  # the policy tools load facts unchecked; the service's sync drops cycles first
    store.replace([EntityFact("A", "folder", "B"), EntityFact("B", "folder", "A")], [])
    assert store.chain("B") == ("B", "A")
    assert store.chain("A") == ("A", "B")  # not the tail of B's walk


def test_a_cycle_closed_through_a_parent_not_yet_mirrored_is_refused(store: FactStore) -> None:
    store.put_entity(EntityFact("f3", "folder", "f2"))  # f2 is not mirrored yet
    with pytest.raises(ValueError, match="descendant"):
        store.put_entity(EntityFact("f2", "folder", "f3"))
