"""Policy review for any signed-in person: the matrix, bind types, the hierarchy, and explained decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import NotFound
from service.pats.services import PatService
from service.policy_tools.dbexplain import NotFoundError, Question, explain_stored
from service.policy_tools.invariants import report
from service.policy_tools.matrix import build_matrix
from service.runtime import RuntimeDependency, provide_service
from service.security.principal import Principal
from service.text import NAME_PATTERN
from service.ui.render import page
from service.ui.session import Viewer

Text = Annotated[str, Parameter(max_length=100, pattern=NAME_PATTERN)]
ONLY_OWN = "You may explain decisions for yourself and your own tokens only."
NO_SUCH_ENTITY = "No entity with this UUID is known to you."


class PolicyPages(Controller):
    """``/ui/policy``: read-only."""

    path = "/policy"
    dependencies = {"pats": provide_service(PatService)}

    @get("/", sync_to_thread=True)
    def review(self, runtime: RuntimeDependency, viewer: Viewer) -> Template:
        """The running policy: roles against permissions, bind types, the hierarchy, the invariants and their status.

        Invariants are proved once per content of the policy files (in a worker thread), as the API does.
        """
        invariants = report(Path(runtime.settings.policy_dir))
        return page("policy.html", viewer, matrix=build_matrix(runtime.policy.rules), invariants=invariants)

    async def _trace(
        self,
        runtime: RuntimeDependency,
        db_session: AsyncSession,
        pats: PatService,
        viewer: Principal,
        username: str,
        token: str,
        permission: str,
        entity: str,
    ) -> tuple[list[str], dict[str, list[str]]]:
        """The trace, or the errors by field. Others' decisions are for staff: they reveal roles."""
        token_uuid: str | None = None
        if token:
            try:
                await pats.visible(viewer, UUID(token), staff_view=viewer.is_staff)
            except (ValueError, NotFound):
                return [], {"token": ["No such token of yours."]}
            token_uuid = token
        elif username != viewer.username and not viewer.is_staff:
            return [], {"username": [ONLY_OWN]}
        try:
            target = str(UUID(entity)) if entity else None
        except ValueError:
            return [], {"entity": ["Enter the entity's UUID."]}
        # as /api/authz/check/ does: an entity a non-staff person may not learn of is one that does not exist
        if (
            target is not None
            and not viewer.is_staff
            and not runtime.policy.is_visible_to(viewer.user_id, False, target)
        ):
            return [], {"entity": [NO_SUCH_ENTITY]}
        try:
            question = Question(
                permission, target, datetime.now(UTC), username=None if token_uuid else username, token_uuid=token_uuid
            )
            lines = await explain_stored(runtime, db_session, question)
        except NotFoundError as exc:
            return [], {"token" if token_uuid else "username": [str(exc)]}
        return lines, {}

    @get("/explain")
    async def explain(
        self,
        runtime: RuntimeDependency,
        db_session: NamedDependency[AsyncSession],
        pats: NamedDependency[PatService],
        viewer: Viewer,
        username: Text = "",
        token: Text = "",
        permission: Text = "",
        entity: Text = "",
    ) -> Template:
        """Explain a decision: a user or one of their PATs, a permission, an entity, with the trace."""
        username, token, permission, entity = (value.strip() for value in (username, token, permission, entity))
        lines: list[str] = []
        errors: dict[str, list[str]] = {}
        if permission:
            lines, errors = await self._trace(
                runtime, db_session, pats, viewer, username or viewer.username, token, permission, entity
            )
        return page(
            "policy_explain.html",
            viewer,
            status_code=400 if errors else 200,
            permissions=list(runtime.policy.permissions),
            form={"username": username or viewer.username, "token": token, "permission": permission, "entity": entity},
            lines=lines,
            errors=errors,
        )
