"""``tokengate policy``: lint, test, explain, print and compare the rule files in ``policies/``.

Every command except ``explain --user/--token`` works on the files alone: no database, no application.
"""

from __future__ import annotations

import click


@click.group(name="policy")
def policy_group() -> None:
    """Check, test, explain, print and compare the authorisation policy."""
