"""Wire shapes of leaked-credential reports."""

from __future__ import annotations

from typing import Annotated

import msgspec

from service.text import NAME

MAX_CREDENTIALS = 1000
"""Hard bound of the decoder; the configured ``leaks.max_credentials_per_request`` is usually lower."""


class LeakReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Input of ``POST /api/credentials/revoke/``: strings found in public, and where."""

    credentials: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=1024)]], msgspec.Meta(max_length=MAX_CREDENTIALS)
    ]
    source: Annotated[str, msgspec.Meta(max_length=2048), NAME] = ""
    """Where they were found (a URL, say), passed on to each owner: printable, as it lands in their audit events."""


class ReportAccepted(msgspec.Struct, kw_only=True):
    """The one answer to every acceptable report, whatever the strings were."""

    detail: str
