"""Every table, imported in one place so that migrations and ``create_all`` see the whole schema."""

from service.auth_tokens.models import AuthToken
from service.authz.models import RoleAssignment
from service.entities.models import Entity
from service.events.models import Event, WebhookDelivery
from service.pats.models import PersonalAccessToken
from service.security.models import LoginAttempts
from service.users.models import User

__all__ = [
    "AuthToken",
    "Entity",
    "Event",
    "LoginAttempts",
    "PersonalAccessToken",
    "RoleAssignment",
    "User",
    "WebhookDelivery",
]
