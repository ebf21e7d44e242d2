"""Who is making a request, as seen after authentication."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from service.policy.facts import Subject, TokenLimits


class CredentialKind(StrEnum):
    """How the caller authenticated."""

    TOKEN = "token"  # legacy auth token: the user's full current rights
    PAT = "pat"  # Personal Access Token: scopes ∩ the owner's current rights, bounded by bindings
    SESSION = "session"  # a signed-in page session under /ui/ (password sign-in): the user's full current rights


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user and the credential used (``request.user`` in handlers)."""

    user_id: int
    user_uuid: UUID
    username: str
    is_staff: bool
    kind: CredentialKind
    credential_id: int
    limits: TokenLimits | None = None

    is_pat: bool = field(init=False, repr=False, compare=False)
    """Whether the request was made with a Personal Access Token."""
    subject: Subject = field(init=False, repr=False, compare=False)
    """The policy engine's view of this caller (built once: it keys the decision memo on every request)."""

    def __post_init__(self) -> None:
        # derived once per cached credential rather than on every request
        object.__setattr__(self, "is_pat", self.kind is CredentialKind.PAT)
        object.__setattr__(self, "subject", Subject(user_id=self.user_id, is_staff=self.is_staff, token=self.limits))


CurrentPrincipal = NamedDependency[SkipValidation[Principal]]
"""Handler parameter type for the authenticated caller (the ``principal`` dependency)."""
