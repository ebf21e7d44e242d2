"""Time helpers shared by every domain."""

from __future__ import annotations

from datetime import UTC, datetime

from service.errors import ValidationError

EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
OUT_OF_RANGE = f"Must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)."


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already (as Waldur, with TIME_ZONE=UTC, reads it)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def input_utc(moment: datetime, field: str) -> datetime:
    """A client's ``moment`` in UTC, or a 400 naming ``field`` when it lies outside :data:`EARLIEST` to :data:`LATEST`.

    ``9999-12-31T23:59:59-05:00`` is a valid ISO 8601 time whose UTC form is past year 9999 (``OverflowError``);
    the day of margin at either end keeps a day's arithmetic on any accepted value from overflowing too.
    """
    try:
        utc = as_utc(moment)
    except OverflowError:
        raise ValidationError({field: [OUT_OF_RANGE]}) from None
    if not EARLIEST <= utc <= LATEST:
        raise ValidationError({field: [OUT_OF_RANGE]})
    return utc
