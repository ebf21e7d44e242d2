"""The import graph of ``service/``: no cycles, and the layering of docs/architecture.md.

Every ``import`` counts, wherever it is: at module level, inside a function, or under ``if TYPE_CHECKING:``. A
type-only import back into the module that builds you is a cycle too: the composition stops being a tree.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
DOMAINS = ("users", "auth_tokens", "pats", "entities", "authz", "events", "leaks")
COMPOSITION = ("service.runtime", "service.app", "service.cli", "service.ui")
BASE = ("config", "crypto", "errors", "text", "timeutil", "pagination", "http")
Graph = Mapping[str, frozenset[str]]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> Iterable[str]:
    """Dotted names an import statement may refer to (a module, or a name inside one)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def _resolve(name: str, modules: frozenset[str]) -> str | None:
    """The ``service`` module ``name`` is, or is inside of."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def service_graph() -> Graph:
    """Each module under ``service/`` and the ``service`` modules it imports."""
    paths = {_module_name(path): path for path in SERVICE.rglob("*.py")}
    modules = frozenset(paths)
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for imported in _imported(node, package):
                    if imported.split(".")[0] == "service":
                        target = _resolve(imported, modules)
                        if target is not None and target != name:
                            targets.add(target)
        graph[name] = frozenset(targets)
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as ``[a, b, …, a]``, or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def _within(module: str, *parts: str) -> bool:
    return any(module == part or module.startswith(f"{part}.") for part in parts)


def imports_of(*parts: str, exclude: tuple[str, ...] = ()) -> dict[str, frozenset[str]]:
    """The imports of every module within ``parts`` (dotted prefixes), leaving out ``exclude``."""
    return {
        module: targets
        for module, targets in service_graph().items()
        if _within(module, *parts) and not _within(module, *exclude)
    }


def offending(imports: Mapping[str, frozenset[str]], forbidden: Iterable[str]) -> dict[str, list[str]]:
    """For each module, the imports among ``forbidden`` (dotted prefixes) it makes; modules with none left out."""
    prefixes = tuple(forbidden)
    found = {module: sorted(t for t in targets if _within(t, *prefixes)) for module, targets in imports.items()}
    return {module: targets for module, targets in found.items() if targets}


def test_the_finder_names_a_cycle_through_a_type_only_import() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert find_cycle(graph) == ["a", "b", "c", "a"]


def test_the_finder_accepts_a_graph_without_cycles() -> None:
    assert find_cycle({"a": frozenset({"b", "c"}), "b": frozenset({"c"}), "c": frozenset()}) is None


def test_the_graph_sees_an_import_made_only_under_type_checking() -> None:
    assert "service.security.verifier" in service_graph()["service.security.middleware"]


def test_the_graph_sees_an_import_made_only_inside_a_function() -> None:
    assert "service.policy_tools.cli" in service_graph()["service.cli"]


def test_service_has_no_import_cycle() -> None:
    cycle = find_cycle(service_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_base_helpers_import_only_each_other() -> None:
    base = [f"service.{name}" for name in BASE]
    allowed = (*base, "service.security.client_ip")  # http reads the client address with it
    outside = {
        module: [t for t in targets if not _within(t, *allowed)] for module, targets in imports_of(*base).items()
    }
    assert {module: targets for module, targets in outside.items() if targets} == {}


def test_the_policy_engine_imports_no_domain_security_or_composition() -> None:
    forbidden = (*(f"service.{d}" for d in DOMAINS), "service.security", "service.policy_tools", *COMPOSITION)
    assert offending(imports_of("service.policy"), forbidden) == {}


def test_policy_tools_import_no_domain_model_outside_their_database_adapters() -> None:
    adapters = tuple(f"service.policy_tools.{name}" for name in ("cli", "controllers", "dbexplain"))
    forbidden = (*(f"service.{d}" for d in DOMAINS), "service.security", *COMPOSITION)
    assert offending(imports_of("service.policy_tools", exclude=adapters), forbidden) == {}


def test_security_imports_no_controller_service_or_composition() -> None:
    domain_layers = [f"service.{d}.{layer}" for d in DOMAINS for layer in ("controllers", "services", "schemas")]
    audit_log = "service.events.services"  # the one domain service the security parts use
    forbidden = [layer for layer in domain_layers if layer != audit_log] + list(COMPOSITION)
    assert offending(imports_of("service.security", "service.broadcast"), forbidden) == {}


def test_domains_import_no_composition_but_the_runtime() -> None:
    forbidden = [part for part in COMPOSITION if part != "service.runtime"]
    assert offending(imports_of(*(f"service.{d}" for d in DOMAINS)), forbidden) == {}
