"""``policy explain --user/--token``: explain a decision for a real user or PAT, from the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import select

from service.authz.sync import FactSync
from service.entities.models import Entity
from service.pats.models import PersonalAccessToken
from service.policy.facts import Binding, Subject, TokenLimits
from service.policy_tools.explain import explain
from service.users.models import User

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from service.runtime import Runtime


class NotFoundError(LookupError):
    """The user, token or entity named on the command line does not exist."""


@dataclass(frozen=True)
class Question:
    """May ``username`` (or the owner of the PAT ``token_uuid``, within its limits) use ``permission`` on ``entity``?

    ``token_uuid`` is the PAT's uuid, never its secret; ``entity`` an entity uuid or None; ``now`` the time asked about.
    """

    permission: str
    entity: str | None
    now: datetime
    username: str | None = None
    token_uuid: str | None = None


async def explain_from_database(runtime: Runtime, question: Question) -> list[str]:
    """Load the facts, then decide and trace ``question``: the trace, notes first.

    Raises:
        NotFoundError: No such user or token.
        ValueError: The entity or token uuid is not a UUID.
    """
    await FactSync(runtime).load_all()
    async with runtime.session() as session:
        return await explain_stored(runtime, session, question)


async def explain_stored(runtime: Runtime, session: AsyncSession, question: Question) -> list[str]:
    """Like :func:`explain_from_database`, on the facts the runtime already mirrors (a running service)."""
    permission, now = question.permission, question.now
    entity = str(UUID(question.entity)) if question.entity is not None else None
    subject, label, notes = await _subject(session, now, question.username, question.token_uuid)
    bindings = subject.token.bindings if subject.token else frozenset()
    names = await _entity_names(session, [*runtime.policy.ancestors(entity or ""), *(b.uuid for b in bindings)])
    _, lines = explain(
        runtime.policy,
        subject,
        permission,
        entity,
        now,
        entity_label=lambda uuid: names.get(uuid, uuid),
        subject_label=label,
    )
    return [*notes, *lines]


async def _subject(
    session: AsyncSession, now: datetime, username: str | None, token_uuid: str | None
) -> tuple[Subject, str, list[str]]:
    """The subject, how to name it, and notes on what the service checks before the policy."""
    token: PersonalAccessToken | None = None
    if token_uuid is not None:
        token = await session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.uuid == UUID(token_uuid)))
        if token is None:
            raise NotFoundError(f"no personal access token with uuid {token_uuid}")
        user = await session.get(User, token.user_id)
    else:
        user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    notes = [] if user.is_active else ["note: this user is deactivated: the service refuses all their tokens"]
    if token is None:
        return Subject(user.id, user.is_staff), user.username, notes
    if not token.is_usable(user, now):
        notes.append(
            "note: this token is not usable now (revoked, expired, or not allowed to its owner): "
            "the service answers 401 before asking the policy"
        )
    if token.allowed_networks:
        notes.append(f"note: the token is only accepted from {', '.join(token.allowed_networks)}")
    bound = frozenset(
        Binding(b.get("type", ""), str(b["uuid"]), bool(b.get("deleted")))
        for b in token.allowed_scopes
        if b.get("uuid")
    )
    subject = Subject(user.id, user.is_staff, TokenLimits(frozenset(token.scopes), bound))
    return subject, f"{user.username} via token {token.name!r} ({token.uuid})", notes


async def _entity_names(session: AsyncSession, uuids: list[str]) -> dict[str, str]:
    """``uuid -> "name [uuid]"`` for the entities named in a trace."""
    if not uuids:
        return {}
    rows = await session.execute(select(Entity.uuid, Entity.name).where(Entity.uuid.in_([UUID(u) for u in uuids])))
    return {str(uuid): f"{name} [{uuid}]" for uuid, name in rows}
