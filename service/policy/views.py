"""What the check matcher can see of its target entity, read off the matcher once at load.

A resource server asks about many entities: with 10,000 tokens and 100,000 entities nearly every question is new
to the decision memo, and each costs Casbin a full evaluation. Most of those answers are the same: the shipped
matcher looks at the target (``r.obj``) only through

- ``r.obj == ""`` / ``r.obj != ""`` (a global check or not),
- ``entity_exists(r.obj)``,
- ``g2(r.obj, x)`` (``x`` is the target or above it), where ``x`` is a ``p`` field, a field of an item of a
  collection of the token (``b.uuid for b in r.token.bindings``), or a string constant.

Then, for two mirrored targets, every such expression evaluates alike when the same of those ``x`` values lie on
their ancestor chains: the answer, and the ``p`` line that allows, are the same. :class:`TargetView` names the
``x`` values a question can reach, and :meth:`TargetView.shape` is what of them lies on a target's chain. The
engine memoises an allow under that shape too, so a question about another target of the same shape is answered
without Casbin. A matcher that looks at the target any other way (compares it with a constant, passes it to
another function, takes an attribute of it) gets no view, and every target is its own question, as before.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TREE_FUNCTION = "g2"  # the entity tree's role manager (service.policy.evaluator.EntityTree)
EXISTS_FUNCTION = "entity_exists"


@dataclass(frozen=True, slots=True)
class TargetView:
    """Where the ancestors a check matcher tests its target against come from.

    Attributes:
        columns: Positions in a ``p`` line of the fields passed as ``g2``'s second argument.
        token_fields: ``(collection, field)``: ``item.field`` of each item of ``token.collection``.
        constants: String constants passed there.
    """

    columns: tuple[int, ...]
    token_fields: tuple[tuple[str, str], ...]
    constants: frozenset[str]

    def reachable(self, lines: Iterable[Sequence[Any]], token: object) -> set[object] | None:
        """Every ``x`` the matcher can test a target against for this asker (None: the token lacks a field)."""
        reached: set[object] = set(self.constants)
        for line in lines:
            reached.update(line[column] for column in self.columns)
        if token is not None:
            try:
                for collection, field in self.token_fields:
                    reached.update(getattr(item, field) for item in getattr(token, collection))
            except (AttributeError, TypeError):  # not there, not iterable, not hashable: no view
                return None
        return reached

    @staticmethod
    def shape(chain: Sequence[str], reachable: set[object]) -> tuple[str, ...]:
        """What the matcher can see of a target with this ancestor chain: the reachable entities on it, in order."""
        return tuple(filter(reachable.__contains__, chain))


def target_view(expr: str, obj: str, token: str, policy_tokens: Sequence[str]) -> TargetView | None:
    """The view of a compiled check matcher ``expr`` (pycasbin's rewriting: ``r_obj``, ``p_entity`` ...) on ``obj``.

    ``token`` is the request token holding the PAT's limits, ``policy_tokens`` the ``p`` fields in order. None when
    the matcher uses ``obj`` in any way but those the module names.
    """
    tree = ast.parse(expr, mode="eval")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    bound: dict[str, list[ast.comprehension]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            for name in ast.walk(node.target):
                if isinstance(name, ast.Name):
                    bound.setdefault(name.id, []).append(node)
    if {obj, token, TREE_FUNCTION, EXISTS_FUNCTION, *policy_tokens} & set(bound):  # a p field bound again is
        return None  # not the p line's: g2(obj, p_entity) would test whatever the comprehension iterates
    columns: set[int] = set()
    fields: set[tuple[str, str]] = set()
    constants: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id == obj):
            continue
        parent = parents.get(node)
        if _is_empty_test(parent) or _is_call(parent, EXISTS_FUNCTION, 1):
            continue
        if not (_is_call(parent, TREE_FUNCTION, 2) and parent.args[0] is node):  # type: ignore[union-attr]
            return None
        above = parent.args[1]  # type: ignore[union-attr]
        if isinstance(above, ast.Name) and above.id in policy_tokens:
            columns.add(list(policy_tokens).index(above.id))
        elif isinstance(above, ast.Constant) and isinstance(above.value, str):
            constants.add(above.value)
        elif (field := _token_item_field(above, token, bound, parents)) is not None:
            fields.add(field)
        else:
            return None
    return TargetView(tuple(sorted(columns)), tuple(sorted(fields)), frozenset(constants))


def _is_call(node: ast.AST | None, function: str, arity: int) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == function
        and len(node.args) == arity
        and not node.keywords
    )


def _is_empty_test(node: ast.AST | None) -> bool:
    """``obj == ""`` or ``obj != ""``, either way round: false, resp. true, for every mirrored target."""
    return (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and isinstance(node.ops[0], ast.Eq | ast.NotEq)
        and any(isinstance(side, ast.Constant) and side.value == "" for side in (node.left, *node.comparators))
    )


def _token_item_field(
    node: ast.AST, token: str, bound: dict[str, list[ast.comprehension]], parents: dict[ast.AST, ast.AST]
) -> tuple[str, str] | None:
    """``(collection, field)`` when ``node`` is ``item.field`` inside the comprehension binding ``item``.

    That comprehension must be the only one binding the name, and iterate over ``token.collection``.
    """
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
        return None
    generators = bound.get(node.value.id, [])
    if len(generators) != 1:
        return None
    (generator,) = generators
    collection = generator.iter
    if not (
        isinstance(generator.target, ast.Name)
        and isinstance(collection, ast.Attribute)
        and isinstance(collection.value, ast.Name)
        and collection.value.id == token
    ):
        return None
    enclosing = parents.get(node)
    while enclosing is not None and not (isinstance(enclosing, ast.ListComp) and generator in enclosing.generators):
        enclosing = parents.get(enclosing)
    return (collection.attr, node.attr) if enclosing is not None else None
