"""Personal Access Tokens: issue under the policy, rotate atomically, revoke, restrict by network.

Reuse detection: a rotated-out token (past any grace period) should never be presented again, since its owner
replaced it. When it is, someone else may hold the family's secrets: every live token rotated from the same
original is revoked at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from sqlalchemy import ColumnElement, Row, String, cast, func, select, update

from service.crypto import display_prefix, new_pat
from service.db import lock_row
from service.db.transaction import after_commit
from service.entities.models import Entity
from service.errors import ActionError, NotFound, ValidationError
from service.events.services import EventType
from service.pagination import Window
from service.pats.models import PersonalAccessToken, live_at
from service.pats.network import NetworkAclError, normalize_network_acl
from service.pats.repositories import PatRepository
from service.pats.schemas import AllowedScopeOut, AvailableScope, BindingTarget, PatCreate
from service.policy import PolicyEngine
from service.runtime import DomainService
from service.security.verifier import CachedCredential
from service.timeutil import as_utc, input_utc
from service.users.models import User

if TYPE_CHECKING:
    from service.runtime import Runtime
    from service.security.principal import Principal

logger = logging.getLogger("tokengate.pats")

DELETED = "(deleted)"
# Waldur's wording for a non-staff user asking for a global scope; other global scopes get the first form.
_STAFF_ONLY = "Only staff users can request the {} scope."
_WALDUR_STAFF_ONLY = {"SUPPORT.ACCESS": "Only staff or support users can request the SUPPORT.ACCESS scope."}
BINDABLE_SCAN = 500  # entities matching a binding search that are checked against the policy, at most


def available_scopes(policy: PolicyEngine, principal: Principal) -> list[AvailableScope]:
    """Permissions the caller may put in a token now, with their descriptions, in declaration order."""
    names = policy.delegable_scopes(principal.user_id, principal.is_staff)
    return [AvailableScope(permission=name, description=policy.permissions[name].description) for name in names]


def available_binding_targets(policy: PolicyEngine, principal: Principal) -> list[BindingTarget]:
    """For each permission, the entity types the caller may bind a token to (staff: every bindable type)."""
    targets = policy.binding_targets(principal.user_id, principal.is_staff)
    return [BindingTarget(permission=name, types=types) for name, types in sorted(targets.items())]


async def mark_bindings_deleted(session: Any, entity_uuid: str, when: datetime) -> list[str]:
    """Mark every binding to ``entity_uuid`` deleted (before the entity is, in the same transaction).

    A marked binding grants nothing forever: not even to an entity registered later with the same uuid, of any
    type. Returns the hashes of the tokens changed, for their cached verifications to be dropped after the commit.
    """
    text = cast(PersonalAccessToken.allowed_scopes, String)
    changed = []
    for token in await session.scalars(select(PersonalAccessToken).where(text.contains(entity_uuid))):
        bindings = [
            {**b, "deleted": when.isoformat()} if b.get("uuid") == entity_uuid and not b.get("deleted") else b
            for b in token.allowed_scopes
        ]
        if bindings != token.allowed_scopes:
            token.allowed_scopes = bindings
            changed.append(token.token_hash)
    return changed


class TokenNames(Protocol):
    """What a token's events name it by: a :class:`PersonalAccessToken`, or a row with these columns."""

    uuid: UUID
    name: str
    user_id: int


class PatService(DomainService[PersonalAccessToken, PatRepository]):
    """Every PAT operation; what a change invalidates is dropped once it is committed (``after_commit``)."""

    repository_type = PatRepository

    @property
    def _session(self) -> Any:
        return self.repository.session

    async def _record(self, event_type: str, token: TokenNames, message: str, **context: Any) -> None:
        """An event about ``token``, recorded for its owner."""
        await self.events.record(
            event_type, message, user_id=token.user_id, pat_uuid=token.uuid.hex, pat_name=token.name, **context
        )

    # -- reading -----------------------------------------------------------------------------------------------
    async def listing(
        self,
        window: Window,
        *,
        owner_id: int | None = None,
        owner_uuid: UUID | None = None,
        active: bool | None = None,
    ) -> tuple[list[PersonalAccessToken], int]:
        """A page of tokens, newest first: everyone's, or one owner's (by id or by user UUID); active or not."""
        filters: list[Any] = []
        if active is not None:
            filters.append(PersonalAccessToken.is_active.is_(active))
        if owner_id is not None:
            filters.append(PersonalAccessToken.user_id == owner_id)
        if owner_uuid is not None:
            filters.append(PersonalAccessToken.user_id.in_(select(User.id).where(User.uuid == owner_uuid)))
        items, total = await self.get_many_and_count(
            window.filter, *filters, order_by=[PersonalAccessToken.created_at.desc(), PersonalAccessToken.id.desc()]
        )
        return list(items), total

    async def bindable_entities(self, principal: Principal, search: str, limit: int) -> list[Entity]:
        """Entities, by name, that the caller could bind a token to now (a type and a held permission allow it)."""
        policy = self.runtime.policy
        targets = policy.binding_targets(principal.user_id, principal.is_staff)
        types = {entity_type for names in targets.values() for entity_type in names}
        if not types:
            return []
        candidates = await self._session.scalars(
            select(Entity)
            .where(Entity.type.in_(types), Entity.name.icontains(search, autoescape=True))
            .order_by(Entity.name, Entity.id)
            .limit(BINDABLE_SCAN)
        )
        found = []
        for entity in candidates:
            permissions = [name for name, allowed in targets.items() if entity.type in allowed]
            uuid = str(entity.uuid)
            if any(policy.may_delegate(principal.user_id, principal.is_staff, name, uuid) for name in permissions):
                found.append(entity)
                if len(found) == limit:
                    break
        return found

    async def owner(self, principal: Principal) -> User:
        """The caller's own user row (the owner of the tokens they create or rotate)."""
        user: User = await self._session.get_one(User, principal.user_id)
        return user

    async def visible(self, principal: Principal, uuid: UUID, *, staff_view: bool) -> PersonalAccessToken:
        """The token ``uuid`` if the caller owns it (or, with ``staff_view``, any token); 404 otherwise."""
        token = await self.get_one_or_none(uuid=uuid)
        if token is None or (token.user_id != principal.user_id and not staff_view):
            raise NotFound
        return token

    async def presenting(self, credential: CachedCredential | None) -> PersonalAccessToken:
        """The PAT that authenticates this request (``request.auth``); 404 when it is authenticated otherwise."""
        is_pat = credential is not None and credential.principal.is_pat
        token = await self.get_one_or_none(id=credential.credential_id) if credential is not None and is_pat else None
        if token is None:
            raise NotFound("This request is not authenticated with a personal access token.")
        return token

    async def bindings_out(self, tokens: list[PersonalAccessToken]) -> dict[int, list[AllowedScopeOut]]:
        """Each token's bindings with entity names, looked up in one query."""
        uuids = {UUID(b["uuid"]) for token in tokens for b in token.allowed_scopes if b.get("uuid")}
        names: dict[str, tuple[str, str]] = {}
        if uuids:
            statement = select(Entity.uuid, Entity.type, Entity.name).where(Entity.uuid.in_(uuids))
            rows = await self._session.execute(statement)
            names = {str(uuid): (entity_type, name) for uuid, entity_type, name in rows}
        out: dict[int, list[AllowedScopeOut]] = {}
        for token in tokens:
            items = []
            for binding in token.allowed_scopes:
                found = names.get(binding.get("uuid", ""))
                if found is None or found[0] != binding.get("type") or binding.get("deleted"):
                    items.append(AllowedScopeOut(type=binding.get("type", ""), uuid=None, name=DELETED))
                else:
                    items.append(AllowedScopeOut(type=found[0], uuid=UUID(binding["uuid"]), name=found[1]))
            out[token.id] = items
        return out

    # -- issuing -----------------------------------------------------------------------------------------------
    async def issue(self, owner: User, data: PatCreate) -> tuple[PersonalAccessToken, str]:
        """Validate ``data`` against the limits and the policy, then create the token (201 with the plaintext)."""
        fields = self._validate_fields(owner, data)
        await lock_row(self._session, User, owner.id)  # serialises concurrent creations by one user
        self._validate_allowed(owner)
        active = await self._session.scalar(
            select(func.count())
            .select_from(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == owner.id, PersonalAccessToken.is_active.is_(True))
        )
        limit = self.runtime.settings.tokens.pat_max_per_user
        if active >= limit:
            raise ValidationError(f"Maximum number of active tokens ({limit}) reached.")
        bindings = await self._validate_bindings(owner, data, fields["scopes"])
        token, plaintext = self._new_row(
            owner.id, fields["name"], fields["scopes"], bindings, fields["networks"], fields["expires_at"]
        )
        await self.create(token)
        await self._record(
            EventType.PAT_CREATED,
            token,
            f"Personal access token {token.name} has been created for user {owner.username}.",
        )
        return token, plaintext

    def _new_row(
        self,
        user_id: int,
        name: str,
        scopes: list[str],
        bindings: list[dict[str, str]],
        networks: list[str],
        expires_at: datetime,
    ) -> tuple[PersonalAccessToken, str]:
        plaintext = new_pat(int(expires_at.timestamp()))
        token = PersonalAccessToken(
            user_id=user_id,
            name=name,
            token_prefix=display_prefix(plaintext),
            token_hash=self.runtime.keyring.token_hash(plaintext),
            scopes=scopes,
            allowed_scopes=bindings,
            allowed_networks=networks,
            expires_at=expires_at,
            is_active=True,
        )
        return token, plaintext

    def _validate_allowed(self, owner: User) -> None:
        if not self.runtime.settings.tokens.pat_enabled:
            raise ValidationError("Personal access tokens are disabled on this server.")
        if not owner.can_use_personal_access_tokens:
            raise ValidationError("You are not allowed to create personal access tokens.")

    def _validate_fields(self, owner: User, data: PatCreate) -> dict[str, Any]:
        """Field-level checks, collected per field as DRF does."""
        errors: dict[str, Any] = {}
        name = data.name.strip()  # control characters never get here: see service/text.py
        if not name:
            errors["name"] = ["This field may not be blank."]
        scope_errors = self._scope_errors(owner, data.scopes)
        if scope_errors:
            errors["scopes"] = scope_errors
        expires_at = input_utc(data.expires_at, "expires_at")
        now = datetime.now(UTC)
        max_days = self.runtime.settings.tokens.pat_max_lifetime_days
        if expires_at <= now:
            errors["expires_at"] = ["Expiration must be in the future."]
        elif expires_at > now + timedelta(days=max_days):
            errors["expires_at"] = [f"Expiration cannot exceed {max_days} days from now."]
        type_errors = [self._type_error(binding.type) for binding in data.allowed_scopes]
        if any(type_errors):
            errors["allowed_scopes"] = [{"type": [e]} if e else {} for e in type_errors]
        try:
            networks = self.normalize_networks(data.allowed_networks)
        except NetworkAclError as exc:
            errors["allowed_networks"] = exc.messages
            networks = []
        if errors:
            raise ValidationError(errors)
        return {
            "name": name,
            "scopes": list(dict.fromkeys(data.scopes)),
            "expires_at": expires_at,
            "networks": networks,
        }

    def normalize_networks(self, entries: list[str]) -> list[str]:
        """Canonical allow-list within the configured size."""
        return normalize_network_acl(entries, self.runtime.settings.tokens.pat_max_acl_entries)

    def _type_error(self, entity_type: str) -> str | None:
        types = self.runtime.policy.entity_types
        if entity_type in types:
            return None
        return f"Unknown scope type '{entity_type}'. Expected one of: {sorted(types)}."

    def _scope_errors(self, owner: User, scopes: list[str]) -> list[str]:
        """Waldur's messages, then the policy's stricter rule: only what the owner may delegate now."""
        permissions = self.runtime.policy.permissions
        invalid = [scope for scope in scopes if scope not in permissions]
        if invalid:
            return [f"Invalid scope(s): {invalid}"]
        if not scopes:
            return ["At least one scope is required."]
        staff_only = [scope for scope in scopes if permissions[scope].global_only and not owner.is_staff]
        if staff_only:
            return [_WALDUR_STAFF_ONLY.get(staff_only[0], _STAFF_ONLY.format(staff_only[0]))]
        never = [scope for scope in scopes if not permissions[scope].delegable]
        if never:
            return [f"These permissions can never be delegated to a token: {never}"]
        delegable = set(self.runtime.policy.delegable_scopes(owner.id, owner.is_staff))
        missing = [scope for scope in scopes if scope not in delegable]
        if missing:
            return [f"You do not currently hold these permissions and cannot delegate them: {missing}"]
        return []

    async def _validate_bindings(self, owner: User, data: PatCreate, scopes: list[str]) -> list[dict[str, str]]:
        if not data.allowed_scopes:
            return []
        policy = self.runtime.policy
        if any(policy.permissions[scope].global_only for scope in scopes):
            names = " or ".join(name for name, spec in policy.permissions.items() if spec.global_only)
            raise ValidationError(
                {"allowed_scopes": [f"Entity bindings cannot be combined with {names} — those scopes are global."]}
            )
        requested = {binding.uuid for binding in data.allowed_scopes}
        found = {
            uuid: entity_type
            for uuid, entity_type in await self._session.execute(
                select(Entity.uuid, Entity.type).where(Entity.uuid.in_(requested))
            )
        }
        errors: list[str] = []
        for binding in data.allowed_scopes:
            if found.get(binding.uuid) != binding.type or not policy.is_visible_to(
                owner.id, owner.is_staff, str(binding.uuid)
            ):
                errors.append(f"{binding.type} with uuid {binding.uuid} does not exist.")
                continue
            bindable = [scope for scope in scopes if policy.may_bind(scope, binding.type)]
            if not bindable:
                errors.append(f"None of the requested scopes may be bound to a {binding.type}.")
            elif not any(policy.may_delegate(owner.id, owner.is_staff, scope, str(binding.uuid)) for scope in bindable):
                errors.append(f"You do not hold any of the requested permissions on {binding.type} {binding.uuid}.")
        if errors:
            raise ValidationError({"allowed_scopes": errors})
        unique = dict.fromkeys((b.type, str(b.uuid)) for b in data.allowed_scopes)
        return [{"type": entity_type, "uuid": uuid} for entity_type, uuid in unique]

    # -- changing ----------------------------------------------------------------------------------------------
    async def _locked(self, token: PersonalAccessToken) -> PersonalAccessToken:
        """Take the row lock, then re-read the row: concurrent rotations and ACL changes run one at a time."""
        await lock_row(self._session, PersonalAccessToken, token.id)
        await self._session.refresh(token)
        return token

    async def rotate(self, token: PersonalAccessToken, owner: User) -> tuple[PersonalAccessToken, str]:
        """Replace ``token`` by a new one with the same name, scopes, bindings, networks and expiry."""
        self._validate_allowed(owner)
        token = await self._locked(token)
        if not token.is_active:
            raise ActionError("Cannot rotate an inactive token.")
        successor, plaintext = self._new_row(
            token.user_id,
            token.name,
            list(token.scopes),
            list(token.allowed_scopes),
            list(token.allowed_networks),
            token.expires_at,
        )
        successor.family_id = token.family_id
        successor.expiry_notice_days = token.expiry_notice_days  # same expiry: the owner was told already
        await self.create(successor)
        grace = self.runtime.settings.tokens.rotation_grace_seconds
        now = datetime.now(UTC)
        token.is_active = False
        token.rotated_at = now
        token.grace_until = now + timedelta(seconds=grace) if grace > 0 else None
        await self.update(token)
        await self._record(
            EventType.PAT_ROTATED,
            token,
            f"Personal access token {token.name} of user {owner.username} has been rotated.",
            new_pat_uuid=successor.uuid.hex,
        )
        after_commit(self._session, self.runtime.forget_token, token.token_hash)
        return successor, plaintext

    async def revoke(self, token: PersonalAccessToken, actor: Principal) -> None:
        """Soft revoke: ``is_active`` false; the token stops working at once.

        Revoking the token a family's rotations ended with also ends the grace of the tokens it replaced: a grace
        period eases the switch to the successor, and must not keep the credential alive once the successor is gone.
        """
        await self._session.execute(
            update(PersonalAccessToken)
            .where(PersonalAccessToken.id == token.id)
            .values(is_active=False, grace_until=None)
        )
        await self._record(
            EventType.PAT_REVOKED,
            token,
            f"Personal access token {token.name} has been revoked.",
            actor_id=actor.user_id,
        )
        after_commit(self._session, self.runtime.forget_token, token.token_hash)
        if token.rotated_at is None:
            predecessors = await self._revoke_live(
                PersonalAccessToken.family_id == token.family_id, PersonalAccessToken.rotated_at.is_not(None)
            )
            for row in predecessors:
                await self._record(
                    EventType.PAT_REVOKED,
                    row,
                    f"Personal access token {row.name}, rotated out, has been revoked with its successor.",
                    actor_id=actor.user_id,
                    successor_pat_uuid=token.uuid.hex,
                )
            self._forget_after_commit(predecessors)
        await self._session.refresh(token)

    async def _revoke_live(self, *where: ColumnElement[bool]) -> list[Row[UUID, str, int, str]]:
        """Revoke the live tokens (active or in grace) matching ``where``: ``(uuid, name, user_id, token_hash)`` each.

        The caller records its events, then calls :meth:`_forget_after_commit`.
        """
        result = await self._session.execute(
            update(PersonalAccessToken)
            .where(live_at(datetime.now(UTC)), *where)
            .values(is_active=False, grace_until=None)
            .returning(
                PersonalAccessToken.uuid,
                PersonalAccessToken.name,
                PersonalAccessToken.user_id,
                PersonalAccessToken.token_hash,
            )
        )
        return list(result.all())

    def _forget_after_commit(self, revoked: list[Row[UUID, str, int, str]]) -> None:
        for *_, token_hash in revoked:
            after_commit(self._session, self.runtime.forget_token, token_hash)

    async def revoke_family(self, token: PersonalAccessToken, client_address: str | None) -> int:
        """Reuse detected: revoke every live token of ``token``'s family; returns how many.

        One ``pat_reuse_detected`` event when anything was revoked; replays of a token whose family is already dead
        record nothing more, so an unauthenticated replay cannot flood the audit log.
        """
        revoked = await self._revoke_live(PersonalAccessToken.family_id == token.family_id)
        if not revoked:
            return 0
        await self._record(
            EventType.PAT_REUSE_DETECTED,
            token,
            f"Rotated-out personal access token {token.name} was presented again from {client_address or 'unknown'};"
            f" {len(revoked)} live token(s) of its rotation family have been revoked.",
            family_id=token.family_id.hex,
            client_address=client_address,
            revoked_pat_uuids=[uuid.hex for uuid, *_ in revoked],
        )
        self._forget_after_commit(revoked)
        return len(revoked)

    async def revoke_leaked(self, token_hashes: list[str], source: str, reporter: str) -> int:
        """Revoke the live tokens among ``token_hashes`` (reported found in public); returns how many.

        Each owner gets a ``token_reported_leaked`` event saying where it was found (``source``, as reported) and who
        reported it (``reporter``, the client address).
        """
        revoked = await self._revoke_live(PersonalAccessToken.token_hash.in_(token_hashes))
        for row in revoked:
            await self._record(
                EventType.TOKEN_REPORTED_LEAKED,
                row,
                f"Personal access token {row.name} was reported as leaked and has been revoked.",
                reported_source=source,
                reporter_address=reporter,
            )
        self._forget_after_commit(revoked)
        return len(revoked)

    async def set_network_acl(self, token: PersonalAccessToken, entries: list[str]) -> PersonalAccessToken:
        """Replace the allow-list of an active token."""
        try:
            networks = self.normalize_networks(entries)
        except NetworkAclError as exc:
            raise ValidationError({"allowed_networks": exc.messages}) from exc
        token = await self._locked(token)
        if not token.is_active:
            raise ActionError("Cannot change the network ACL of an inactive token.")
        old = list(token.allowed_networks)
        token.allowed_networks = networks
        await self.update(token)
        await self._record(
            EventType.PAT_NETWORK_ACL_UPDATED,
            token,
            f"Network ACL of personal access token {token.name} has been updated.",
            old_allowed_networks=old,
            new_allowed_networks=networks,
        )
        after_commit(self._session, self.runtime.forget_token, token.token_hash)
        return token

    async def expire_due(self) -> int:
        """Deactivate active tokens past their expiry, one ``pat_expired`` event each; returns how many.

        One atomic ``UPDATE … RETURNING``, so several workers sweeping at once never report a token twice.
        """
        expired = (
            await self._session.execute(
                update(PersonalAccessToken)
                .where(PersonalAccessToken.is_active.is_(True), PersonalAccessToken.expires_at <= datetime.now(UTC))
                .values(is_active=False)
                .returning(PersonalAccessToken.uuid, PersonalAccessToken.name, PersonalAccessToken.user_id)
            )
        ).all()
        for row in expired:
            await self._record(EventType.PAT_EXPIRED, row, f"Personal access token {row.name} has expired.")
        return len(expired)

    async def notify_expiring(self, now: datetime | None = None) -> int:
        """One ``pat_expiring`` event per active token and configured notice it has come within; returns how many.

        Each notice is claimed by an atomic ``UPDATE … RETURNING`` of ``expiry_notice_days``, nearest first, so
        several workers or instances sweeping at once never notify a token twice, and a token that is already
        within a nearer notice skips the farther one.
        """
        now = now or datetime.now(UTC)
        notified = 0
        for days in sorted(set(self.runtime.settings.tokens.expiry_notice_days)):
            due = (
                await self._session.execute(
                    update(PersonalAccessToken)
                    .where(
                        PersonalAccessToken.is_active.is_(True),
                        PersonalAccessToken.expires_at > now,
                        PersonalAccessToken.expires_at <= now + timedelta(days=days),
                        PersonalAccessToken.expiry_notice_days.is_(None)
                        | (PersonalAccessToken.expiry_notice_days > days),
                    )
                    .values(expiry_notice_days=days)
                    .returning(
                        PersonalAccessToken.uuid,
                        PersonalAccessToken.name,
                        PersonalAccessToken.user_id,
                        PersonalAccessToken.expires_at,
                    )
                )
            ).all()
            for row in due:
                expires_at = as_utc(row.expires_at).isoformat()
                await self._record(
                    EventType.PAT_EXPIRING,
                    row,
                    f"Personal access token {row.name} expires within {days} day(s), at {expires_at}.",
                    expires_at=expires_at,
                    notice_days=days,
                )
            notified += len(due)
        return notified


async def detect_reuse(runtime: Runtime, token_id: int, client_address: str | None) -> None:
    """The verifier found the PAT ``token_id`` rotated out and presented again: revoke its family (unless switched off).

    A failure is logged, not raised: the request still gets its 401, and a later presentation tries again.
    """
    if not runtime.settings.tokens.reuse_detection:
        return
    try:
        async with runtime.session() as session:
            pats = PatService(session=session, runtime=runtime)
            await pats.revoke_family(await pats.get(token_id), client_address)
    except Exception:
        logger.exception("reuse of personal access token %s detected, but its family could not be revoked", token_id)
