"""The check's target uuid, kept as text, accepts what a msgspec `uuid.UUID` field does, spelled as `str(UUID)`."""

from __future__ import annotations

import json
import random
import uuid

import msgspec

from service.authz.schemas import CheckTarget, EntityRef
from service.authz.sync import spelled

NEW, OLD = msgspec.json.Decoder(CheckTarget), msgspec.json.Decoder(EntityRef)


def _candidates() -> list[str]:
    rng = random.Random(7)
    u = str(uuid.UUID(int=rng.getrandbits(128)))
    out = [
        u,
        u.upper(),
        u.replace("-", ""),
        u.replace("-", "").upper(),
        "{" + u + "}",
        "urn:uuid:" + u,
        u + "\n",
        u + "\r",
        " " + u,
        u + " ",
        u + "\x00",
        u.replace("a", "\uff41"),
        u.replace("1", "\u0661"),
        u.replace("1", "\uff11"),
        u.replace("-", "\u2010"),
        "\u212a" * 32,
        "x" * 10_000,
        u * 2,
    ]
    for _ in range(3000):
        out.append("".join(rng.choice("0123456789abcdefABCDEF-{}:") for _ in range(rng.choice([32, 35, 36, 37]))))
        h = uuid.UUID(int=rng.getrandbits(128)).hex
        for i, p in enumerate(sorted(rng.sample(range(33), 4))):
            h = h[: p + i] + "-" + h[p + i :]
        out.append(h)
    return out


def test_the_text_uuid_accepts_and_spells_exactly_as_the_uuid_decoder() -> None:
    for text in _candidates():
        body = json.dumps({"type": "resource", "uuid": text}).encode()
        try:
            old = str(OLD.decode(body).uuid)
        except msgspec.ValidationError:
            old = None
        try:
            new = spelled(NEW.decode(body).uuid)
        except msgspec.ValidationError:
            new = None
        assert old == new, text
