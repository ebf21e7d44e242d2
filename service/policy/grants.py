"""Casbin evaluation of the grant rules (``p, ROLE, PERMISSION``), partitioned by permission."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from threading import Lock
from typing import Any

import casbin
from casbin.model import Model

# pycasbin logs every allow at INFO and every deny at WARNING (and the model at load): on the decision path that is
# a log line per request. Decisions are explained by the engine instead; Casbin's own errors still get through.
logging.getLogger("casbin").setLevel(logging.ERROR)


class _CompiledEnforcer(casbin.Enforcer):  # type: ignore[misc]  # pycasbin ships no type hints
    """An enforcer that parses its matcher once instead of on every ``enforce`` call.

    pycasbin re-parses the matcher expression per call (~25 µs here). Caching it is sound because
    the model declares no role definitions (``g``), so the functions bound into the expression never
    change; the loader rejects models that do.
    """

    def __init__(self, model: Model) -> None:
        self._compiled: dict[str, Any] = {}
        super().__init__(model)

    def _get_expression(self, expr: str, functions: Any = None) -> Any:
        compiled = self._compiled.get(expr)
        if compiled is None:
            compiled = self._compiled[expr] = super()._get_expression(expr, functions)
        return compiled


class GrantMatcher:
    """Asks Casbin whether any of a set of roles grants a permission.

    One enforcer per permission holds only that permission's grant rules, so an ``enforce`` call
    scans a handful of rules instead of the whole policy; the matcher is the model's own.
    """

    def __init__(self, model_text: str, grants: Mapping[str, Sequence[str]]) -> None:
        """Build the per-permission enforcers.

        Args:
            model_text: Contents of ``model.conf``.
            grants: Permission -> roles granting it, in rule order.
        """
        self._enforcers = {perm: self._partition(model_text, perm, roles) for perm, roles in grants.items()}
        # The compiled matcher keeps per-call state (its names), so calls must not interleave.
        self._lock = Lock()

    @staticmethod
    def _partition(model_text: str, perm: str, roles: Sequence[str]) -> _CompiledEnforcer:
        model = Model()
        model.load_model_from_text(model_text)
        for role in roles:
            model.add_policy("p", "p", [role, perm])
        return _CompiledEnforcer(model)

    def granting_role(self, roles: frozenset[str], perm: str) -> str | None:
        """Return the first role (in rule order) among ``roles`` that grants ``perm``, or None."""
        enforcer = self._enforcers.get(perm)
        if enforcer is None:
            return None
        with self._lock:
            allowed, rule = enforcer.enforce_ex(roles, perm)
        return rule[0] if allowed else None
