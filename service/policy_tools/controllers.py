"""``GET /api/policy/matrix/`` and ``GET /api/policy/invariants/``: the running policy, for any authenticated caller."""

from __future__ import annotations

from pathlib import Path

from litestar import Controller, get

from service.http import error_responses
from service.policy_tools.invariants import InvariantReport, report
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

    @get(
        "/invariants/",
        operation_id="PolicyInvariants",
        responses=error_responses(401),
        summary="Invariants of the running policy and whether each holds",
        sync_to_thread=True,
    )
    def invariants(self, runtime: RuntimeDependency) -> InvariantReport:
        """The invariants of the policy directory, each proved or with a counterexample (see ``policy assert``).

        Proved once per content of the policy files, in a worker thread; later calls are answered from memory.
        """
        return report(Path(runtime.settings.policy_dir))
