"""Decision tables for the policy engine, in the spirit of pycasbin's allow/deny tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

import pytest

from service.policy import AssignmentFact, Binding, EntityFact, PolicyEngine, Subject, TokenLimits

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
USERS = {"alice": 1, "bob": 2, "carol": 3, "dave": 4, "erin": 5, "frank": 6, "root": 99}


def uid(name: str) -> str:
    """A stable uuid for a readable test name."""
    return str(uuid5(NAMESPACE_URL, f"tokengate-test/{name}"))


def who(name: str, scopes: set[str] | None = None, bound: tuple[str, ...] = ()) -> Subject:
    """A subject: a password/legacy user, or (with scopes) a PAT bound to the named entities."""
    token = (
        None
        if scopes is None
        else TokenLimits(frozenset(scopes), frozenset(Binding(TYPES.get(b, "folder"), uid(b)) for b in bound))
    )
    return Subject(USERS[name], name == "root", token)


# acme ── apollo ── vm1        globex ── zeus ── vm3
#     ├── gemini ── vm2
#     └── cloud (offering)
TREE = [
    ("acme", "customer", None),
    ("apollo", "project", "acme"),
    ("vm1", "resource", "apollo"),
    ("gemini", "project", "acme"),
    ("vm2", "resource", "gemini"),
    ("cloud", "offering", "acme"),
    ("globex", "customer", None),
    ("zeus", "project", "globex"),
    ("vm3", "resource", "zeus"),
]
TYPES = {name: kind for name, kind, _ in TREE}
ASSIGNMENTS = [
    ("a-alice", "alice", "CUSTOMER.OWNER", "acme", None),
    ("a-bob", "bob", "PROJECT.ADMIN", "apollo", None),
    ("a-carol-member", "carol", "PROJECT.MEMBER", "apollo", None),
    ("a-carol-old", "carol", "PROJECT.MANAGER", "apollo", NOW - HOUR),
    ("a-carol-soon", "carol", "PROJECT.MANAGER", "gemini", NOW + HOUR),
    ("a-dave", "dave", "OFFERING.MANAGER", "cloud", None),
    ("a-frank", "frank", "CUSTOMER.SUPPORT", "globex", None),
]


def build_world(policy_dir: Path, memo_size: int = 65_536) -> PolicyEngine:
    engine = PolicyEngine.from_directory(policy_dir, memo_size)
    engine.replace_facts(
        [EntityFact(uid(name), kind, parent and uid(parent)) for name, kind, parent in TREE],
        [AssignmentFact(uid(a), USERS[user], role, uid(on), exp) for a, user, role, on, exp in ASSIGNMENTS],
    )
    return engine


@pytest.fixture(name="engine")
def fx_engine(policy_dir: Path) -> PolicyEngine:
    return build_world(policy_dir)


BOUND_APOLLO = {"RESOURCE.UPDATE", "RESOURCE.LIST", "PROJECT.UPDATE", "STAFF.ACCESS"}

# (subject, permission, entity, expected, deciding clause)
TABLE = [
    # direct grants and inheritance customer -> project -> resource
    (who("alice"), "CUSTOMER.UPDATE", "acme", True, "role"),
    (who("alice"), "PROJECT.UPDATE", "apollo", True, "role"),
    (who("alice"), "RESOURCE.TERMINATE", "vm1", True, "role"),
    (who("alice"), "RESOURCE.TERMINATE", "vm2", True, "role"),
    (who("alice"), "OFFERING.UPDATE", "cloud", True, "role"),
    (who("bob"), "RESOURCE.UPDATE", "apollo", True, "role"),
    (who("bob"), "RESOURCE.UPDATE", "vm1", True, "role"),
    (who("dave"), "ORDER.APPROVE", "cloud", True, "role"),
    (who("frank"), "RESOURCE.LIST", "vm3", True, "role"),
    # a role grants only its own permissions
    (who("bob"), "PROJECT.UPDATE", "apollo", False, "role"),
    (who("frank"), "RESOURCE.UPDATE", "vm3", False, "role"),
    (who("dave"), "OFFERING.DELETE", "cloud", False, "role"),
    # no upward inheritance
    (who("bob"), "RESOURCE.LIST", "acme", False, "role"),
    (who("dave"), "ORDER.APPROVE", "acme", False, "role"),
    # sibling and cross-customer isolation
    (who("bob"), "RESOURCE.LIST", "gemini", False, "role"),
    (who("bob"), "RESOURCE.LIST", "vm2", False, "role"),
    (who("dave"), "RESOURCE.LIST", "vm1", False, "role"),
    (who("alice"), "PROJECT.UPDATE", "zeus", False, "role"),
    (who("alice"), "CUSTOMER.UPDATE", "globex", False, "role"),
    (who("erin"), "RESOURCE.LIST", "vm1", False, "role"),
    # expiry: an expired assignment counts for nothing, a live one does
    (who("carol"), "PROJECT.UPDATE", "apollo", False, "role"),
    (who("carol"), "RESOURCE.LIST", "vm1", True, "role"),
    (who("carol"), "PROJECT.UPDATE", "gemini", True, "role"),
    # clauses before the role check
    (who("alice"), "NOPE.NOTHING", "apollo", False, "unknown-permission"),
    (who("root"), "NOPE.NOTHING", None, False, "unknown-permission"),
    (who("alice"), "PROJECT.UPDATE", "nowhere", False, "unknown-entity"),
    (who("alice"), "PROJECT.UPDATE", None, False, "no-entity"),
    (who("alice"), "STAFF.ACCESS", None, False, "global-permission"),
    (who("alice"), "SUPPORT.ACCESS", "acme", False, "global-permission"),
    # staff
    (who("root"), "PROJECT.DELETE", "zeus", True, "staff"),
    (who("root"), "PROJECT.DELETE", None, True, "staff"),
    (who("root"), "STAFF.ACCESS", None, True, "global-permission"),
    (who("root"), "SUPPORT.ACCESS", None, True, "global-permission"),
    # a staff PAT is limited by its scopes and bindings
    (who("root", {"PROJECT.UPDATE"}), "PROJECT.UPDATE", "zeus", True, "staff"),
    (who("root", {"PROJECT.UPDATE"}), "PROJECT.DELETE", "zeus", False, "token-scope"),
    (who("root", {"PROJECT.UPDATE"}), "STAFF.ACCESS", None, False, "token-scope"),
    (who("root", {"STAFF.ACCESS"}), "STAFF.ACCESS", None, True, "global-permission"),
    (who("root", BOUND_APOLLO, ("apollo",)), "RESOURCE.UPDATE", "vm1", True, "staff"),
    (who("root", BOUND_APOLLO, ("apollo",)), "RESOURCE.UPDATE", "vm2", False, "token-binding"),
    (who("root", BOUND_APOLLO, ("apollo",)), "PROJECT.UPDATE", "acme", False, "token-binding"),
    (who("root", BOUND_APOLLO, ("apollo",)), "RESOURCE.LIST", None, False, "token-binding"),
    (who("root", BOUND_APOLLO, ("apollo",)), "STAFF.ACCESS", None, False, "token-binding"),
    (who("root", BOUND_APOLLO, ("apollo",)), "STAFF.ACCESS", "apollo", False, "token-binding"),
    # a user's PAT: scopes ∩ the user's roles, bindings pass down only
    (who("alice", {"PROJECT.UPDATE"}), "PROJECT.UPDATE", "apollo", True, "role"),
    (who("alice", set()), "PROJECT.UPDATE", "apollo", False, "token-scope"),
    (who("bob", {"PROJECT.UPDATE"}), "PROJECT.UPDATE", "apollo", False, "role"),
    (who("alice", BOUND_APOLLO, ("apollo",)), "RESOURCE.LIST", "vm1", True, "role"),
    (who("alice", BOUND_APOLLO, ("apollo",)), "PROJECT.UPDATE", "apollo", True, "role"),
    (who("alice", BOUND_APOLLO, ("apollo",)), "PROJECT.UPDATE", "gemini", False, "token-binding"),
    (who("alice", BOUND_APOLLO, ("vm1",)), "RESOURCE.LIST", "apollo", False, "token-binding"),
    (who("alice", BOUND_APOLLO, ("vm1", "gemini")), "RESOURCE.LIST", "vm2", True, "role"),
    (who("alice", BOUND_APOLLO, ("nowhere",)), "RESOURCE.LIST", "vm1", False, "token-binding"),
    (who("alice", BOUND_APOLLO, ("apollo",)), "RESOURCE.LIST", "nowhere", False, "token-binding"),
    (who("alice", {"RESOURCE.LIST"}), "RESOURCE.LIST", "nowhere", False, "unknown-entity"),
    # never-delegable permissions: full rights without a PAT, never through one
    (who("alice"), "SERVICE_ACCOUNT.MANAGE", "apollo", True, "role"),
    (who("alice", {"SERVICE_ACCOUNT.MANAGE"}), "SERVICE_ACCOUNT.MANAGE", "apollo", False, "token-scope"),
]


def _case_id(case: tuple) -> str:
    subject, permission, entity, expected, _ = case
    token = "" if subject.token is None else f"+pat{len(subject.token.scopes)}/{len(subject.token.bindings)}"
    name = next(n for n, i in USERS.items() if i == subject.user_id)
    return f"{name}{token}-{permission}-{entity}-{'allow' if expected else 'deny'}"


def _entity(name: str | None) -> str | None:
    return None if name is None else uid(name)


@pytest.mark.parametrize("case", TABLE, ids=[_case_id(c) for c in TABLE])
def test_decision_table(engine: PolicyEngine, case: tuple) -> None:
    subject, permission, entity, expected, clause = case
    decision = engine.decide(subject, permission, _entity(entity), NOW)
    assert (decision.allowed, decision.clause) == (expected, clause), decision.reason
    again = engine.decide(subject, permission, _entity(entity), NOW)
    assert again == decision
    # warm: from the memo, unless the entity is not mirrored (such decisions are never memoised)
    assert (again is decision) is (entity is None or engine.entity(uid(entity)) is not None)


def test_allow_is_explained(engine: PolicyEngine, policy_dir: Path) -> None:
    decision = engine.decide(who("alice"), "RESOURCE.TERMINATE", uid("vm1"), NOW)
    assert decision.role == "CUSTOMER.OWNER"
    assert decision.assignment == uid("a-alice")
    assert decision.held_on == uid("acme")
    file, line = decision.rule.split(":")
    assert file == "policies/roles.csv"
    assert (policy_dir / "roles.csv").read_text().splitlines()[int(line) - 1] == "g, CUSTOMER.OWNER, RESOURCE.TERMINATE"
    for part in ("CUSTOMER.OWNER", uid("a-alice"), uid("acme"), decision.rule):
        assert part in decision.reason


def test_nearest_assignment_is_named(engine: PolicyEngine) -> None:
    engine.put_assignment(AssignmentFact(uid("a-alice-p"), 1, "CUSTOMER.OWNER", uid("apollo"), None))
    decision = engine.decide(who("alice"), "RESOURCE.LIST", uid("vm1"), NOW)
    assert (decision.assignment, decision.held_on) == (uid("a-alice-p"), uid("apollo"))


def test_assignment_expires_between_calls(engine: PolicyEngine) -> None:
    carol = who("carol")
    assert engine.decide(carol, "PROJECT.UPDATE", uid("gemini"), NOW).allowed
    assert not engine.decide(carol, "PROJECT.UPDATE", uid("gemini"), NOW + HOUR).allowed
    # time running backwards (clock skew) does not keep a stale answer either
    assert engine.decide(carol, "PROJECT.UPDATE", uid("gemini"), NOW).allowed


def test_removed_assignment_denies_next_call(engine: PolicyEngine) -> None:
    assert engine.decide(who("bob"), "RESOURCE.UPDATE", uid("vm1"), NOW).allowed
    engine.remove_assignment(uid("a-bob"))
    assert not engine.decide(who("bob"), "RESOURCE.UPDATE", uid("vm1"), NOW).allowed


def test_removed_entity_grants_nothing(engine: PolicyEngine) -> None:
    bound = who("alice", {"RESOURCE.LIST"}, ("apollo",))
    assert engine.decide(bound, "RESOURCE.LIST", uid("vm1"), NOW).allowed
    engine.remove_entity(uid("apollo"))  # vm1 now dangles: neither apollo's binding nor acme's roles reach it
    assert engine.ancestors(uid("vm1")) == [uid("vm1")]
    assert not engine.decide(bound, "RESOURCE.LIST", uid("vm1"), NOW).allowed
    assert not engine.decide(who("alice"), "RESOURCE.LIST", uid("vm1"), NOW).allowed


def test_moving_an_entity_moves_its_grants(engine: PolicyEngine) -> None:
    assert not engine.decide(who("alice"), "RESOURCE.LIST", uid("vm3"), NOW).allowed
    engine.put_entity(EntityFact(uid("vm3"), "resource", uid("apollo")))
    assert engine.ancestors(uid("vm3")) == [uid("vm3"), uid("apollo"), uid("acme")]
    assert engine.decide(who("alice"), "RESOURCE.LIST", uid("vm3"), NOW).allowed


def test_cycles_are_refused(engine: PolicyEngine) -> None:
    with pytest.raises(ValueError, match="descendant"):
        engine.put_entity(EntityFact(uid("acme"), "customer", uid("vm1")))
    with pytest.raises(ValueError):
        engine.put_entity(EntityFact(uid("acme"), "customer", uid("acme")))
    assert engine.ancestors(uid("vm1")) == [uid("vm1"), uid("apollo"), uid("acme")]


def test_memo_is_bounded(policy_dir: Path) -> None:
    engine = build_world(policy_dir, memo_size=3)
    first = engine.decide(who("alice"), "RESOURCE.LIST", uid("acme"), NOW)
    assert engine.decide(who("alice"), "RESOURCE.LIST", uid("acme"), NOW) is first
    for permission in ("CUSTOMER.UPDATE", "PROJECT.UPDATE", "RESOURCE.TERMINATE"):  # each a new question
        engine.decide(who("alice"), permission, uid("acme"), NOW)
    again = engine.decide(who("alice"), "RESOURCE.LIST", uid("acme"), NOW)
    assert again == first
    assert again is not first


def test_generation_moves_on_every_change(engine: PolicyEngine, policy_dir: Path) -> None:
    seen = [engine.generation]
    engine.put_assignment(AssignmentFact(uid("x"), 5, "PROJECT.MEMBER", uid("zeus"), None))
    seen.append(engine.generation)
    engine.remove_assignment(uid("x"))
    seen.append(engine.generation)
    engine.reload(policy_dir)
    seen.append(engine.generation)
    assert seen == sorted(set(seen))
    engine.decide(who("carol"), "PROJECT.UPDATE", uid("gemini"), NOW)
    assert engine.generation == seen[-1]  # questions alone change nothing
    engine.decide(who("carol"), "PROJECT.UPDATE", uid("gemini"), NOW + HOUR)
    assert engine.generation == seen[-1] + 1  # an expiry does


# -- an 8-level deep tree under the test-only policy --------------------------------------------
# org ── f1 ── f2 ── ... ── f8 ── item
DEEP = ["org", *(f"f{i}" for i in range(1, 9)), "item"]
DEEP_ASSIGNMENTS = [
    ("d-admin", "alice", "ORG.ADMIN", "org"),
    ("d-editor", "bob", "FOLDER.EDITOR", "f2"),
    ("d-viewer", "carol", "FOLDER.VIEWER", "f5"),
]


def _deep_type(name: str) -> str:
    return name if name in ("org", "item") else "folder"


@pytest.fixture(name="deep")
def fx_deep(deep_policy_dir: Path) -> PolicyEngine:
    engine = PolicyEngine.from_directory(deep_policy_dir)
    engine.replace_facts(
        [
            EntityFact(uid(name), _deep_type(name), parent and uid(parent))
            for name, parent in zip(DEEP, [None, *DEEP[:-1]], strict=True)
        ],
        [AssignmentFact(uid(a), USERS[user], role, uid(on), None) for a, user, role, on in DEEP_ASSIGNMENTS],
    )
    return engine


DEEP_TABLE = [
    (who("alice"), "FOLDER.WRITE", "item", True, "role"),
    (who("alice"), "FOLDER.SHARE", "f8", True, "role"),
    (who("bob"), "FOLDER.WRITE", "f8", True, "role"),
    (who("bob"), "FOLDER.WRITE", "f2", True, "role"),
    (who("bob"), "FOLDER.WRITE", "f1", False, "role"),
    (who("bob"), "FOLDER.SHARE", "f3", False, "role"),
    (who("carol"), "FOLDER.READ", "item", True, "role"),
    (who("carol"), "FOLDER.READ", "f4", False, "role"),
    (who("carol"), "FOLDER.WRITE", "f8", False, "role"),
    (who("alice", {"FOLDER.READ"}, ("f6",)), "FOLDER.READ", "item", True, "role"),
    (who("alice", {"FOLDER.READ"}, ("f6",)), "FOLDER.READ", "f5", False, "token-binding"),
    (who("alice", {"FOLDER.SHARE"}, ("f6",)), "FOLDER.SHARE", "f7", False, "token-scope"),
    (who("root", {"FOLDER.WRITE"}, ("f7",)), "FOLDER.WRITE", "item", True, "staff"),
    (who("root", {"FOLDER.WRITE"}, ("f7",)), "FOLDER.WRITE", "org", False, "token-binding"),
]


@pytest.mark.parametrize("case", DEEP_TABLE, ids=[_case_id(c) for c in DEEP_TABLE])
def test_deep_decision_table(deep: PolicyEngine, case: tuple) -> None:
    subject, permission, entity, expected, clause = case
    decision = deep.decide(subject, permission, uid(entity), NOW)
    assert (decision.allowed, decision.clause) == (expected, clause), decision.reason


def test_deep_ancestors(deep: PolicyEngine) -> None:
    assert deep.ancestors(uid("item")) == [uid(name) for name in reversed(DEEP)]
    assert deep.ancestors(uid("org")) == [uid("org")]
    assert deep.ancestors(uid("nowhere")) == []
    decision = deep.decide(who("alice"), "FOLDER.READ", uid("item"), NOW)
    assert decision.held_on == uid("org")


# -- delegation and binding questions --------------------------------------------------------


def test_delegable_scopes(engine: PolicyEngine) -> None:
    staff = engine.delegable_scopes(99, True, NOW)
    assert staff == [name for name, spec in engine.permissions.items() if spec.delegable]
    assert {"STAFF.ACCESS", "SUPPORT.ACCESS"} <= set(staff)
    assert "SERVICE_ACCOUNT.MANAGE" not in staff
    owner = engine.delegable_scopes(1, False, NOW)
    assert "PROJECT.CREATE" in owner
    assert "STAFF.ACCESS" not in owner
    assert "SERVICE_ACCOUNT.MANAGE" not in owner
    assert owner == [name for name in engine.permissions if name in owner]  # declaration order
    assert engine.delegable_scopes(2, False, NOW) == list(engine.roles["PROJECT.ADMIN"].permissions)
    assert engine.delegable_scopes(3, False, NOW) == list(engine.roles["PROJECT.MANAGER"].permissions[:-1])
    assert engine.delegable_scopes(3, False, NOW + HOUR) == ["RESOURCE.LIST", "ORDER.LIST"]
    assert engine.delegable_scopes(5, False, NOW) == []


def test_binding_targets(engine: PolicyEngine) -> None:
    bob = engine.binding_targets(2, False, NOW)
    assert bob == {
        perm: ["project"]
        for perm in (
            "RESOURCE.LIST",
            "RESOURCE.UPDATE",
            "RESOURCE.SET_LIMITS",
            "RESOURCE.SET_PLAN",
            "RESOURCE.TERMINATE",
            "ORDER.LIST",
            "ORDER.CREATE",
            "ORDER.CANCEL",
        )
    }
    alice = engine.binding_targets(1, False, NOW)
    assert alice["PROJECT.UPDATE"] == ["customer"]  # only where the role is held directly
    assert "SERVICE_ACCOUNT.MANAGE" not in alice
    assert engine.binding_targets(4, False, NOW) == {
        "ORDER.LIST": ["offering"],
        "ORDER.APPROVE": ["offering"],
        "ORDER.REJECT": ["offering"],
        "OFFERING.UPDATE": ["offering"],
        "OFFERING.UPDATE_COMPONENTS": ["offering"],
        "OFFERING.CREATE_PLAN": ["offering"],
        "OFFERING.PAUSE": ["offering"],
    }
    engine.put_assignment(AssignmentFact(uid("a-bob-c"), 2, "CUSTOMER.SUPPORT", uid("globex"), None))
    assert engine.binding_targets(2, False, NOW)["RESOURCE.LIST"] == ["customer", "project"]
    staff = engine.binding_targets(99, True, NOW)
    assert staff["RESOURCE.LIST"] == ["customer", "project", "resource"]
    assert "STAFF.ACCESS" not in staff
    assert "SERVICE_ACCOUNT.MANAGE" not in staff
    assert engine.binding_targets(5, False, NOW) == {}


@pytest.mark.parametrize(
    ("user", "staff", "permission", "entity", "expected"),
    [
        ("alice", False, "RESOURCE.UPDATE", "vm2", True),
        ("alice", False, "SERVICE_ACCOUNT.MANAGE", "gemini", True),
        ("bob", False, "RESOURCE.UPDATE", "acme", False),
        ("carol", False, "PROJECT.UPDATE", "apollo", False),
        ("erin", False, "RESOURCE.LIST", "vm1", False),
        ("alice", False, "NOPE.NOTHING", "acme", False),
        ("alice", False, "PROJECT.UPDATE", "nowhere", False),
        ("root", True, "PROJECT.DELETE", "zeus", True),
    ],
)
def test_holds(engine: PolicyEngine, user: str, staff: bool, permission: str, entity: str, expected: bool) -> None:
    assert engine.holds(USERS[user], staff, permission, uid(entity), NOW) is expected
