"""The review matrix as Markdown, CSV, HTML or JSON."""

from __future__ import annotations

import csv
import html
import io

import msgspec

from service.policy_tools.matrix import PolicyMatrix

FORMATS = ("md", "csv", "html", "json")
YES = "✓"


def render(matrix: PolicyMatrix, fmt: str) -> str:
    """Render ``matrix`` in one of :data:`FORMATS`."""
    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(matrix).decode(), indent=2)
    return {"md": _markdown, "csv": _csv, "html": _html}[fmt](matrix)


def _table(matrix: PolicyMatrix) -> tuple[list[str], list[list[str]]]:
    """One row per permission: its delegation and bind types, then a column per role."""
    roles = matrix.roles
    header = ["permission", "delegation", "bind types", *(f"{r.name} ({r.entity_type})" for r in roles)]
    rows = [
        [p.name, p.delegation, " ".join(p.bind_types) or "-", *(YES if p.name in r.permissions else "" for r in roles)]
        for p in matrix.permissions
    ]
    return header, rows


def _hierarchy(matrix: PolicyMatrix) -> list[str]:
    return [f"{t.name}: {'root' if not t.parents else 'under ' + ' or '.join(t.parents)}" for t in matrix.entity_types]


def _reach(matrix: PolicyMatrix) -> list[str]:
    return [f"{r.name}: held on {r.entity_type}, applies to {', '.join(r.applies_to)}" for r in matrix.roles]


def _markdown(matrix: PolicyMatrix) -> str:
    header, rows = _table(matrix)
    lines = ["## Entity hierarchy", "", *(f"- {line}" for line in _hierarchy(matrix)), "", "## Roles", ""]
    lines += [f"- {line}" for line in _reach(matrix)]
    lines += ["", "## Permissions by role", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _csv(matrix: PolicyMatrix) -> str:
    header, rows = _table(matrix)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[("x" if cell == YES else cell) for cell in row] for row in rows])
    return out.getvalue()


def _html(matrix: PolicyMatrix) -> str:
    header, rows = _table(matrix)
    esc = html.escape
    head = "".join(f"<th>{esc(cell)}</th>" for cell in header)
    body = "\n".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    items = "".join(f"<li>{esc(line)}</li>" for line in _hierarchy(matrix))
    reach = "".join(f"<li>{esc(line)}</li>" for line in _reach(matrix))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>tokengate policy matrix</title></head><body>\n'
        f"<h2>Entity hierarchy</h2><ul>{items}</ul>\n<h2>Roles</h2><ul>{reach}</ul>\n"
        f'<h2>Permissions by role</h2>\n<table border="1">\n<tr>{head}</tr>\n{body}\n</table>\n</body></html>\n'
    )
