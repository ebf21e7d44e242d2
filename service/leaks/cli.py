"""``tokengate tokens scan``: find tokengate tokens in text offline, and optionally report them for revocation.

Works on the files alone (prefix, shape and checksum from :mod:`service.crypto`): no configuration, no database.
"""

from __future__ import annotations

import sys
from typing import IO

import click
import httpx

from service.crypto import display_prefix, find_tokens

REVOCATION_PATH = "/api/credentials/revoke/"
BATCH = 100  # the service's default for leaks.max_credentials_per_request


@click.group(name="tokens")
def tokens_group() -> None:
    """Find leaked tokengate tokens."""


def scan_text(text: str) -> list[tuple[int, int, str]]:
    """``(line, column, token)`` of every tokengate token in ``text``, 1-based."""
    found = []
    for match in find_tokens(text):
        line = text.count("\n", 0, match.start()) + 1
        column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        found.append((line, column, match.group()))
    return found


def report(service_url: str, tokens: list[str], source: str) -> None:
    """Send ``tokens`` to the revocation endpoint of the service at ``service_url``, in batches."""
    url = service_url.rstrip("/") + REVOCATION_PATH
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(tokens), BATCH):
            body = {"credentials": tokens[start : start + BATCH], "source": source[:2048]}
            response = client.post(url, json=body)
            if response.status_code != httpx.codes.ACCEPTED:
                raise click.ClickException(f"{url} answered {response.status_code}: {response.text[:200]}")


@tokens_group.command(name="scan")
@click.argument("files", nargs=-1, type=click.File("r", errors="replace"))
@click.option("--revoke", "service_url", metavar="URL", help="Report the tokens found to the tokengate service at URL.")
@click.option("--source", default=None, help="Where the text was found, passed on to the owners (default: its name).")
def scan(files: tuple[IO[str], ...], service_url: str | None, source: str | None) -> None:
    """Find tokengate tokens in FILES (default: standard input) by prefix, shape and checksum.

    Prints FILE:LINE:COLUMN and each token's display prefix, never the whole token. Exits with 1 when tokens were
    found and not reported with --revoke.
    """
    total = 0
    streams: tuple[IO[str], ...] = files or (sys.stdin,)
    for handle in streams:
        name = handle.name if isinstance(handle.name, str) else "-"
        found = scan_text(handle.read())
        for line, column, token in found:
            click.echo(f"{name}:{line}:{column}: {display_prefix(token)}…")
        tokens = list(dict.fromkeys(token for *_, token in found))
        if service_url and tokens:
            report(service_url, tokens, source if source is not None else name)
            click.echo(f"{name}: {len(tokens)} token(s) reported to {service_url}", err=True)
        total += len(found)
    if total and not service_url:
        raise SystemExit(1)
