"""What a worker does with a notification from another worker (and from itself, or from garbage: nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from service.broadcast import CHANNEL, Broadcast


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def forget_token(self, token_hash: str) -> None:
        self.calls.append(("token", token_hash))

    def forget_user(self, user_id: int) -> None:
        self.calls.append(("user", user_id))


@pytest.fixture(name="heard")
def fx_heard() -> tuple[Broadcast, Recorder, list[str]]:
    recorder, woken = Recorder(), []
    broadcast = Broadcast(create_async_engine("sqlite+aiosqlite://"), recorder, lambda: woken.append("policy"))
    broadcast.on_facts = lambda: woken.append("facts")
    return broadcast, recorder, woken


def test_another_workers_changes_are_applied(heard: tuple[Broadcast, Recorder, list[str]]) -> None:
    broadcast, recorder, woken = heard
    for payload in ("w2 token 3f9a", "w2 user 42", "w2 facts ", "w2 policy "):
        broadcast._received(None, 1, CHANNEL, payload)
    assert recorder.calls == [("token", "3f9a"), ("user", 42)]
    assert woken == ["facts", "policy"]


def test_own_and_malformed_notifications_change_nothing(heard: tuple[Broadcast, Recorder, list[str]]) -> None:
    broadcast, recorder, woken = heard
    for payload in (
        f"{broadcast.sender} token 3f9a",
        f"{broadcast.sender} facts ",
        f"{broadcast.sender} policy ",
        "",
        "w2",
        "w2 user x",
        "w2 user -1",
        "w2 nonsense 1",
        "w2 user",
    ):
        broadcast._received(None, 1, CHANNEL, payload)
    assert recorder.calls == []
    assert woken == []
