"""Log formatting: JSON or plain lines, the request id attached, token-shaped text cut to its display prefix."""

from __future__ import annotations

import json
import logging
import sys

from service.crypto import new_legacy_key, new_pat
from service.logs import JsonFormatter, PlainFormatter, request_id_var


def _record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    info = sys.exc_info() if exc_info else None
    record = logging.LogRecord("tokengate.test", logging.WARNING, __file__, 1, message, args, info)
    record.user_id = 7
    return record


def test_json_lines_carry_the_request_id_and_no_token() -> None:
    key, pat = new_legacy_key(), new_pat(2_000_000_000)
    reset = request_id_var.set("req-1")
    try:
        try:
            raise ValueError(f"lookup of {pat} failed")
        except ValueError:
            line = JsonFormatter().format(_record("key %s pasted", key, exc_info=True))
    finally:
        request_id_var.reset(reset)
    document = json.loads(line)
    assert document["request_id"] == "req-1"
    assert document["user_id"] == 7
    assert document["level"] == "warning"
    assert key not in line
    assert pat not in line
    assert key[:12] in document["message"]
    assert "ValueError" in document["exception"]


def test_plain_lines_for_a_terminal() -> None:
    key = new_legacy_key()
    line = PlainFormatter().format(_record("key %s pasted", key))
    assert "WARNING" in line
    assert "tokengate.test: key tgl_" in line
    assert "user_id=7" in line
    assert key not in line
