"""The equivalent of tokengate's check: knox authenticates, a serializer validates, an in-memory tree answers.

The permission answer is a dict walk up a customer -> project -> resource tree with the caller's roles held in
memory, i.e. no cheaper and no dearer than tokengate's memoised decision; the difference measured is the stack.
"""

# Filled by ``prepare`` through environment variables at import: entity uuid -> (type, parent uuid)
import os

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

TREE: dict[str, tuple[str, str | None]] = {}
ROLES: dict[tuple[int, str], set[str]] = {}  # (user id, entity uuid) -> roles held there
GRANTS = {"CUSTOMER.OWNER": {"RESOURCE.UPDATE", "PROJECT.UPDATE", "CUSTOMER.UPDATE"}}
if os.environ.get("PEER_DRF_TREE"):
    customer, project, resource, user_id = os.environ["PEER_DRF_TREE"].split(",")
    TREE.update({customer: ("customer", None), project: ("project", customer), resource: ("resource", project)})
    ROLES[(int(user_id), customer)] = {"CUSTOMER.OWNER"}


class EntityRefSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=64)
    uuid = serializers.UUIDField()


class CheckSerializer(serializers.Serializer):
    permission = serializers.CharField(max_length=100)
    entity = EntityRefSerializer(required=False, allow_null=True)


class CheckView(APIView):
    def post(self, request):
        data = CheckSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        permission, ref = data.validated_data["permission"], data.validated_data.get("entity")
        node = str(ref["uuid"]) if ref else None
        if node is not None and TREE.get(node, (None,))[0] != ref["type"]:
            return Response({"detail": "Not found."}, status=404)
        while node is not None:
            for role in ROLES.get((request.user.id, node), ()):
                if permission in GRANTS.get(role, ()):
                    return Response(
                        {"allowed": True, "reason": f"{role} held on {node} grants {permission}", "clause": "role"}
                    )
            node = TREE[node][1]
        return Response({"allowed": False, "reason": "no role grants it", "clause": "role"})


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        return Response({"status": "ok"})
