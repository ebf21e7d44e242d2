"""Reading page forms into the API's input structures, and the API's errors back onto the fields they concern."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import msgspec
from litestar.datastructures import FormMultiDict

from service.errors import NON_FIELD, ValidationError
from service.text import NAME_PATTERN, PATTERN_MESSAGES, is_name

T = TypeVar("T")
Errors = dict[str, list[str]]


def messages(errors: dict[str, Any]) -> Errors:
    """``{field: [text]}`` from a Waldur error body, whose items may themselves be ``{subfield: [text]}``."""

    def flatten(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [text for item in value.values() for text in flatten(item)]
        if isinstance(value, list):
            return [text for item in value for text in flatten(item)]
        return [str(value)]

    return {field: flatten(value) for field, value in errors.items() if flatten(value)}


def convert(raw: dict[str, Any], struct: type[T]) -> T:
    """``raw`` as ``struct``, with the decoder's complaint under the field it names (400 shape)."""
    try:
        return msgspec.convert(raw, struct)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.split("`$.", 1)[1].split("`", 1)[0].split("[", 1)[0] if "`$." in text else NON_FIELD
        raise ValidationError({field: [text]}) from exc


def lines(text: str) -> list[str]:
    """Entries of a textarea, one a line or separated by commas; blanks dropped."""
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


def expiry_bounds(max_days: int, today: date | None = None) -> tuple[date, date]:
    """The first and last day a new token may expire on (at 00:00 UTC), the configured maximum included."""
    today = today or datetime.now(UTC).date()
    return today + timedelta(days=1), today + timedelta(days=max_days)


def expiry_from(text: str) -> datetime:
    """00:00 UTC of the ``YYYY-MM-DD`` day; the service then checks it against the configured maximum."""
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError({"expires_at": ["Choose the day the token expires."]}) from exc
    return datetime.combine(day, time.min, tzinfo=UTC)


def field(form: FormMultiDict, name: str) -> str:
    """One form value, stripped; empty when absent."""
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def name_field(form: FormMultiDict, name: str) -> str:
    """One form value that names something (a username, a search term): a 400 for control characters, as in the API.

    The value is looked up in the database, and PostgreSQL cannot compare text holding NUL.
    """
    value = field(form, name)
    if not is_name(value):
        raise ValidationError({name: [PATTERN_MESSAGES[NAME_PATTERN]]})
    return value


def values(form: FormMultiDict, name: str) -> list[str]:
    """Every value sent for ``name`` (checkboxes), in order; none when absent."""
    return [str(value) for value in form.getall(name, [])]
