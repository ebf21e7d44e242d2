"""The policy engine: Casbin rules from ``policies/`` and an in-memory mirror of the facts they apply to."""

from service.policy.catalog import PermissionSpec, RoleSpec
from service.policy.engine import CLAUSES, PolicyEngine
from service.policy.errors import PolicyError
from service.policy.facts import AssignmentFact, Binding, Clause, Decision, EntityFact, Subject, TokenLimits

__all__ = [
    "CLAUSES",
    "AssignmentFact",
    "Binding",
    "Clause",
    "Decision",
    "EntityFact",
    "PermissionSpec",
    "PolicyEngine",
    "PolicyError",
    "RoleSpec",
    "Subject",
    "TokenLimits",
]
