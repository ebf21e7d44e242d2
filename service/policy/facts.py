"""Value types exchanged with the policy engine: facts in, subjects in, decisions out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class EntityFact:
    """An entity mirrored from the database.

    Attributes:
        uuid: Hyphenated uuid string.
        type: Entity type declared in ``policies/entities.csv``.
        parent: Uuid of the parent entity, or None for a root.
    """

    uuid: str
    type: str
    parent: str | None


@dataclass(frozen=True, slots=True)
class AssignmentFact:
    """An active role assignment mirrored from the database.

    Attributes:
        uuid: Uuid of the assignment (named in explanations).
        user_id: Integer id of the user holding the role.
        role: Role name declared in ``policies/roles.csv``.
        entity: Uuid of the entity the role is held on.
        expires_at: Timezone-aware UTC expiry, or None for no expiry.
    """

    uuid: str
    user_id: int
    role: str
    entity: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenLimits:
    """The ceiling a personal access token puts on its owner's rights.

    Attributes:
        scopes: Permission names the token carries.
        bindings: Entity uuids the token is bound to; empty means unrestricted.
    """

    scopes: frozenset[str]
    bindings: frozenset[str]


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks.

    Attributes:
        user_id: Integer id of the user.
        is_staff: Whether the user is staff.
        token: Limits of the PAT used, or None for a legacy token or password (full rights of the user).
    """

    user_id: int
    is_staff: bool
    token: TokenLimits | None = None
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a subject keys the decision memo on every request: hash it once
        object.__setattr__(self, "_hash", hash((self.user_id, self.is_staff, self.token)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one question, with its explanation.

    Attributes:
        allowed: Whether the action is allowed.
        reason: One human-readable sentence naming the deciding clause.
        clause: Machine-readable name of the deciding clause (see ``engine.CLAUSES``).
        role: Role that granted the permission (role clause only).
        assignment: Uuid of the granting assignment (role clause only).
        held_on: Uuid of the entity the granting role is held on (role clause only).
        rule: ``file:line`` of the grant rule Casbin matched (role clause only).
    """

    allowed: bool
    reason: str
    clause: str = ""
    role: str | None = None
    assignment: str | None = None
    held_on: str | None = None
    rule: str | None = None
