"""Value types exchanged with the policy engine: facts in, subjects in, decisions out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Clause(StrEnum):
    """The clauses of the check, in the order ``policies/model.conf`` states them; a decision names one."""

    UNKNOWN_PERMISSION = "unknown-permission"
    TOKEN_SCOPE = "token-scope"
    TOKEN_BINDING = "token-binding"
    UNKNOWN_ENTITY = "unknown-entity"
    GLOBAL_PERMISSION = "global-permission"
    STAFF = "staff"
    NO_ENTITY = "no-entity"
    ROLE = "role"


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
class Binding:
    """An entity a personal access token is bound to.

    Attributes:
        type: The entity's type when the token was bound; a binding counts only for an entity of that type.
        uuid: Hyphenated uuid string.
        deleted: The entity was deleted since: the binding grants nothing, even if the uuid is registered again.
    """

    type: str
    uuid: str
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class TokenLimits:
    """The ceiling a personal access token puts on its owner's rights.

    Attributes:
        scopes: Permission names the token carries.
        bindings: Entities the token is bound to (deleted ones included: they still restrict); empty means
            unrestricted.
    """

    scopes: frozenset[str]
    bindings: frozenset[Binding]


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
        clause: Machine-readable name of the deciding clause: a :class:`Clause`, or ``DIR/model.conf:LINE`` for
            a clause an author added to the matcher.
        role: Role that granted the permission (role clause only).
        assignment: Uuid of the granting assignment (role clause only).
        held_on: Uuid of the entity the granting role is held on (role clause only).
        rule: For an allow by a role, ``file:line`` of its grant rule (``g, ROLE, PERMISSION``); for a denial,
            ``file:line`` of the clause of ``model.conf`` that failed.
    """

    allowed: bool
    reason: str
    clause: str = ""
    role: str | None = None
    assignment: str | None = None
    held_on: str | None = None
    rule: str | None = None
