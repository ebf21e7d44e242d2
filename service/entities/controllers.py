"""``/api/entities/``: the registry a host system syncs its customers, projects, resources and offerings into."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from service.entities.models import Entity
from service.entities.schemas import EntityCreate, EntityRead, EntityUpdate
from service.entities.services import EntityService
from service.http import STAFF_READ, WRITE, absolute_url
from service.pagination import WindowDependency, list_route, paginated
from service.runtime import provide_service
from service.security.guards import staff_only
from service.text import NAME_PATTERN

Entities = NamedDependency[EntityService]
EntityUUID = Annotated[UUID, Parameter(description="The entity's UUID.")]


def entity_read(request: Request[Any, Any, Any], entity: Entity, parents: Mapping[int, UUID]) -> EntityRead:
    """The API shape of ``entity``; ``parents`` maps parent ids to UUIDs (:meth:`EntityService.parent_uuids`)."""
    return EntityRead(
        url=absolute_url(request, f"/api/entities/{entity.uuid}/"),
        uuid=entity.uuid,
        type=entity.type,
        name=entity.name,
        parent=None if entity.parent_id is None else parents[entity.parent_id],
        created=entity.created_at,
    )


async def one_entity_read(request: Request[Any, Any, Any], entities: EntityService, entity: Entity) -> EntityRead:
    """The API shape of a single entity."""
    return entity_read(request, entity, await entities.parent_uuids([entity]))


class EntityController(Controller):
    """Staff register, rename, move and delete entities."""

    path = "/api/entities"
    tags = ["entities"]
    guards = [staff_only]
    dependencies = {"entities": provide_service(EntityService)}

    @list_route("EntitiesList", STAFF_READ)
    async def list_entities(
        self,
        request: Request[Any, Any, Any],
        entities: Entities,
        window: WindowDependency,
        type: Annotated[
            str | None, Parameter(max_length=64, pattern=NAME_PATTERN, description="Only entities of this type.")
        ] = None,
        parent: Annotated[UUID | None, Parameter(description="Only direct children of this entity.")] = None,
    ) -> Response[list[EntityRead]]:
        """Entities in registration order."""
        items, total = await entities.listing(window, entity_type=type, parent=parent)
        parents = await entities.parent_uuids(items)
        return paginated(request, [entity_read(request, e, parents) for e in items], total, window)

    @post("/", operation_id="EntitiesCreate", responses=WRITE)
    async def create(
        self, request: Request[Any, Any, Any], entities: Entities, data: JSONBody[EntityCreate]
    ) -> EntityRead:
        """Register an entity under a parent of a type the policy allows."""
        return await one_entity_read(request, entities, await entities.register(data))

    @get("/{uuid:uuid}/", operation_id="EntitiesRetrieve", responses=STAFF_READ)
    async def retrieve(self, request: Request[Any, Any, Any], entities: Entities, uuid: EntityUUID) -> EntityRead:
        """One entity."""
        return await one_entity_read(request, entities, await entities.get_one(uuid=uuid))

    @patch("/{uuid:uuid}/", operation_id="EntitiesPartialUpdate", responses=WRITE)
    async def update(
        self, request: Request[Any, Any, Any], entities: Entities, uuid: EntityUUID, data: JSONBody[EntityUpdate]
    ) -> EntityRead:
        """Rename or move an entity; permissions inherited through it follow at once."""
        entity = await entities.change(await entities.get_one(uuid=uuid), data)
        return await one_entity_read(request, entities, entity)

    @delete("/{uuid:uuid}/", operation_id="EntitiesDestroy", responses=WRITE)
    async def destroy(self, entities: Entities, uuid: EntityUUID) -> None:
        """Delete a leaf entity with no active roles on it (409 otherwise)."""
        await entities.remove(await entities.get_one(uuid=uuid))
