"""Rendering pages: one template call that always knows who is signed in."""

from __future__ import annotations

from typing import Any

from litestar.response import Template

from service.security.principal import Principal


def page(template: str, viewer: Principal | None, /, *, status_code: int = 200, **context: Any) -> Template:
    """The page ``template`` with ``viewer`` (None on the sign-in page) and ``context``."""
    return Template(template_name=template, context={"viewer": viewer, **context}, status_code=status_code)
