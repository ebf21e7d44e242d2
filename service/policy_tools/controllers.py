"""``GET /api/policy/matrix/``: the review matrix of the running policy, for any authenticated caller."""

from __future__ import annotations

from litestar import Controller, get

from service.http import error_responses
from service.policy_tools.matrix import PolicyMatrix, build_matrix
from service.runtime import RuntimeDependency


class PolicyController(Controller):
    """Read-only views of the policy the service is enforcing now."""

    path = "/api/policy"
    tags = ["policy"]

    @get(
        "/matrix/",
        operation_id="PolicyMatrix",
        responses=error_responses(401),
        summary="Role-permission matrix of the running policy",
    )
    async def matrix(self, runtime: RuntimeDependency) -> PolicyMatrix:
        """Every role and the permissions it grants, each permission's bind types and delegation, the hierarchy."""
        return build_matrix(runtime.policy.rules)
