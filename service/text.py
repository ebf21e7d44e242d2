r"""Text constraints shared by every input, body field and query filter alike.

PostgreSQL cannot store NUL in text (SQLite can, and would show it back), and control characters in names break
logs, audit messages and every screen that shows them. So no text input holds NUL, and none where a name is
expected holds a control character (C0, DEL, C1, line and paragraph separators, bidirectional overrides). Both are
msgspec ``pattern`` constraints, checked while the request is decoded: a 400 naming the field, before any handler.

``$(?!\n)`` ends both patterns: Python's ``$`` also matches before a final newline, and ``\Z`` has no JSON Schema
(ECMA-262) equivalent; the lookahead makes the two dialects agree.
"""

from __future__ import annotations

import re

import msgspec

NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$(?!\n)"
TEXT_PATTERN = r"^[^\x00]*$(?!\n)"

UUID_PATTERN = (
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$(?!\n)"
)

NAME = msgspec.Meta(pattern=NAME_PATTERN)
"""A name, identifier or filter value: printable characters only."""
TEXT = msgspec.Meta(pattern=TEXT_PATTERN)
"""Free text (passwords): anything but NUL."""
UUID_TEXT = msgspec.Meta(pattern=UUID_PATTERN, extra_json_schema={"extra": {"format": "uuid"}})
"""A uuid kept as the text sent (hyphenated or 32 hex digits, either case): what ``uuid.UUID`` accepts from JSON."""

_NAME = re.compile(NAME_PATTERN)


def is_name(value: str) -> bool:
    """Whether ``value`` passes :data:`NAME` (for input that reaches a service without a schema, e.g. a form)."""
    return _NAME.search(value) is not None


def printable(value: str) -> str:
    """``value`` fit for a log line or an audit event: itself when it passes :data:`NAME`, else its ``ascii()``."""
    return value if is_name(value) else ascii(value)


PATTERN_MESSAGES = {
    NAME_PATTERN: "Control characters are not allowed.",
    TEXT_PATTERN: "Null characters are not allowed.",
    UUID_PATTERN: "Must be a valid UUID.",
}
"""What a client is told instead of the regular expression it failed to match."""
