"""Property test: ``decide`` agrees with a plain brute-force reading of DESIGN §3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from service.policy import AssignmentFact, EntityFact, PolicyEngine, Subject, TokenLimits

POLICIES = Path(__file__).resolve().parents[3] / "policies"
ENGINE = PolicyEngine.from_directory(POLICIES)  # one load; every example replaces the facts
T0 = datetime(2030, 1, 1, tzinfo=UTC)
CHILD_TYPES = {"customer": ("project", "offering"), "project": ("resource",), "resource": (), "offering": ()}
PERMISSIONS = [
    "PROJECT.UPDATE",
    "RESOURCE.LIST",
    "RESOURCE.TERMINATE",
    "ORDER.APPROVE",
    "CUSTOMER.UPDATE",
    "SERVICE_ACCOUNT.MANAGE",
    "STAFF.ACCESS",
    "SUPPORT.ACCESS",
    "NOPE.NOTHING",
]


def _csv(name: str, ptype: str) -> list[list[str]]:
    """The fields of every ``ptype`` line of a policy file, read plainly."""
    rows = [[f.strip() for f in line.split(",")] for line in (POLICIES / name).read_text().splitlines()]
    return [row[1:] for row in rows if row[0] == ptype]


GRANTS: dict[str, set[str]] = {}
for _role, _perm in _csv("roles.csv", "p"):
    GRANTS.setdefault(_role, set()).add(_perm)
ROLES = sorted(GRANTS)
DECLARED = {name: (scope, delegation) for name, scope, delegation, _ in _csv("permissions.csv", "p3")}


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[EntityFact], list[AssignmentFact]]:
    """A random forest respecting the default type hierarchy, and random assignments on it."""
    entities = [EntityFact("e0", "customer", None)]
    for i in range(1, draw(st.integers(1, 14))):
        parent = draw(st.sampled_from([e for e in entities if CHILD_TYPES[e.type]] + [None]))
        kind = "customer" if parent is None else draw(st.sampled_from(CHILD_TYPES[parent.type]))
        entities.append(EntityFact(f"e{i}", kind, parent and parent.uuid))
    assignments = [
        AssignmentFact(
            f"a{i}",
            draw(st.integers(1, 3)),
            draw(st.sampled_from(ROLES)),
            draw(st.sampled_from(entities)).uuid,
            draw(st.none() | st.integers(-2, 2).map(lambda h: T0 + timedelta(hours=h))),
        )
        for i in range(draw(st.integers(0, 10)))
    ]
    return entities, assignments


def subjects(uuids: list[str]) -> st.SearchStrategy[Subject]:
    tokens = st.none() | st.builds(
        TokenLimits,
        st.frozensets(st.sampled_from(PERMISSIONS), max_size=5),
        st.frozensets(st.sampled_from([*uuids, "gone"]), max_size=2),
    )
    return st.builds(Subject, st.integers(1, 3), st.booleans(), tokens)


def reference(
    entities: list[EntityFact], assignments: list[AssignmentFact], s: Subject, perm: str, target: str | None, now
) -> bool:
    """DESIGN §3 written out plainly."""
    parents = {e.uuid: e.parent for e in entities}

    def ancestors(uuid: str) -> list[str]:
        chain = []
        while uuid in parents:
            chain.append(uuid)
            uuid = parents[uuid]
        return chain

    if perm not in DECLARED:
        return False
    scope, delegation = DECLARED[perm]
    if s.token is not None:
        if perm not in s.token.scopes or delegation == "never":
            return False
        if s.token.bindings and (target is None or scope == "global" or not s.token.bindings & set(ancestors(target))):
            return False
    if target is not None and target not in parents:
        return False
    if scope == "global":
        return s.is_staff
    if s.is_staff:
        return True
    if target is None:
        return False
    chain = ancestors(target)
    return any(
        a.user_id == s.user_id
        and a.entity in chain
        and (a.expires_at is None or now < a.expires_at)
        and perm in GRANTS[a.role]
        for a in assignments
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data(), world=worlds())
def test_decide_matches_reference(data: st.DataObject, world: tuple[list[EntityFact], list[AssignmentFact]]) -> None:
    entities, assignments = world
    uuids = [e.uuid for e in entities]
    ENGINE.replace_facts(entities, assignments)
    questions = data.draw(
        st.lists(
            st.tuples(
                subjects(uuids),
                st.sampled_from(PERMISSIONS),
                st.sampled_from([*uuids, None, "gone"]),
                st.integers(-3, 3).map(lambda h: T0 + timedelta(hours=h, minutes=30)),
            ),
            min_size=1,
            max_size=12,
        )
    )
    for round_ in range(2):
        for subject, perm, target, now in questions * 2:  # the second pass is served from the memo
            expected = reference(entities, assignments, subject, perm, target, now)
            assert ENGINE.decide(subject, perm, target, now).allowed is expected, (round_, subject, perm, target, now)
        if assignments:  # removing an assignment takes effect on the very next call
            gone = assignments.pop(data.draw(st.integers(0, len(assignments) - 1)))
            ENGINE.remove_assignment(gone.uuid)
