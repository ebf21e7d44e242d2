"""A server on a real port for the browser tests: its address, and the seed run before it starts."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.runtime import Runtime


@dataclass
class LiveServer:
    """A running server: its base URL and settings."""

    url: str
    settings: Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Seed = Callable[[Runtime], Awaitable[Any]]
