"""``/api/entities/``: the registry a host system syncs its customers, projects, resources and offerings into."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post, route
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from service.entities.models import Entity
from service.entities.schemas import EntityCreate, EntityRead, EntityUpdate
from service.entities.services import EntityService
from service.http import LIST_METHODS, STAFF_READ, WRITE, absolute_url, list_operation_id
from service.pagination import Window, paginated, provide_page
from service.runtime import service_provider
from service.security.guards import staff_only
from service.text import NAME_PATTERN

Entities = NamedDependency[EntityService]
EntityUUID = Annotated[UUID, Parameter(description="The entity's UUID.")]


async def entity_read(request: Request[Any, Any, Any], entities: EntityService, entity: Entity) -> EntityRead:
    """The API shape of ``entity``."""
    return EntityRead(
        url=absolute_url(request, f"/api/entities/{entity.uuid}/"),
        uuid=entity.uuid,
        type=entity.type,
        name=entity.name,
        parent=await entities.parent_uuid(entity),
        created=entity.created_at,
    )


class EntityController(Controller):
    """Staff register, rename, move and delete entities."""

    path = "/api/entities"
    tags = ["entities"]
    guards = [staff_only]
    dependencies = {
        "entities": Provide(service_provider(EntityService)),
        "window": Provide(provide_page, sync_to_thread=False),
    }

    @route("/", http_method=LIST_METHODS, operation_id=list_operation_id("EntitiesList"), responses=STAFF_READ)
    async def list_entities(
        self,
        request: Request[Any, Any, Any],
        entities: Entities,
        window: NamedDependency[Window],
        type: Annotated[
            str | None, Parameter(max_length=64, pattern=NAME_PATTERN, description="Only entities of this type.")
        ] = None,
        parent: Annotated[UUID | None, Parameter(description="Only direct children of this entity.")] = None,
    ) -> Response[list[EntityRead]]:
        """Entities in registration order."""
        filters: list[Any] = []
        if type is not None:
            filters.append(Entity.type == type)
        if parent is not None:
            parent_entity = await entities.get_one_or_none(uuid=parent)
            filters.append(Entity.parent_id == (parent_entity.id if parent_entity else -1))
        items, total = await entities.get_many_and_count(window.filter, *filters, order_by=Entity.id.asc())
        return paginated(request, [await entity_read(request, entities, e) for e in items], total, window)

    @post("/", operation_id="EntitiesCreate", responses=WRITE)
    async def create(
        self, request: Request[Any, Any, Any], entities: Entities, data: JSONBody[EntityCreate]
    ) -> EntityRead:
        """Register an entity under a parent of a type the policy allows."""
        return await entity_read(request, entities, await entities.register(data))

    @get("/{uuid:uuid}/", operation_id="EntitiesRetrieve", responses=STAFF_READ)
    async def retrieve(self, request: Request[Any, Any, Any], entities: Entities, uuid: EntityUUID) -> EntityRead:
        """One entity."""
        return await entity_read(request, entities, await entities.get_one(uuid=uuid))

    @patch("/{uuid:uuid}/", operation_id="EntitiesPartialUpdate", responses=WRITE)
    async def update(
        self, request: Request[Any, Any, Any], entities: Entities, uuid: EntityUUID, data: JSONBody[EntityUpdate]
    ) -> EntityRead:
        """Rename or move an entity; permissions inherited through it follow at once."""
        entity = await entities.change(await entities.get_one(uuid=uuid), data)
        return await entity_read(request, entities, entity)

    @delete("/{uuid:uuid}/", operation_id="EntitiesDestroy", responses=WRITE)
    async def destroy(self, entities: Entities, uuid: EntityUUID) -> None:
        """Delete a leaf entity with no active roles on it (409 otherwise)."""
        await entities.remove(await entities.get_one(uuid=uuid))
