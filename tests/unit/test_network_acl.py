"""``normalize_network_acl``: Waldur's canonical form and exact messages, without a database."""

from __future__ import annotations

import pytest

from service.pats.network import NetworkAclError, normalize_network_acl
from service.security.client_ip import acl_network, parse_ip

MAX = 32


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], []),
        (["203.0.113.5"], ["203.0.113.5/32"]),
        (["  10.0.0.0/8  "], ["10.0.0.0/8"]),
        (["192.168.1.0/24", "192.168.1.0/24"], ["192.168.1.0/24"]),
        (["2001:DB8::1"], ["2001:db8::1/128"]),
        (["2001:0DB8:0000:0000:0000:0000:0000:0000/32"], ["2001:db8::/32"]),
        (["fe80::1/128", "FE80::1"], ["fe80::1/128"]),
        (["10.0.0.1", "10.0.0.1/32", " 10.0.0.1 "], ["10.0.0.1/32"]),
        (["198.51.100.0/24", "10.0.0.0/8", "198.51.100.0/24"], ["198.51.100.0/24", "10.0.0.0/8"]),
        (["::ffff:0:0/96"], ["::ffff:0:0/96"]),
    ],
    ids=[
        "empty",
        "bare-v4",
        "trimmed",
        "duplicate",
        "bare-v6-lowered",
        "v6-compressed",
        "v6-duplicate-spelling",
        "bare-equals-slash32",
        "first-occurrence-order",
        "v6-prefix",
    ],
)
def test_canonical_form(entries: list[str], expected: list[str]) -> None:
    assert normalize_network_acl(entries, MAX) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("not-an-ip", "not-an-ip is not a valid IP address or CIDR network."),
        ("10.0.0.0/33", "10.0.0.0/33 is not a valid IP address or CIDR network."),
        ("300.1.1.1", "300.1.1.1 is not a valid IP address or CIDR network."),
        ("", "Network ACL entries must be non-empty strings."),
        ("   ", "Network ACL entries must be non-empty strings."),
        ("203.0.113.5/24", "203.0.113.5/24 has host bits set; use 203.0.113.0/24 instead."),
        ("2001:db8::1/64", "2001:db8::1/64 has host bits set; use 2001:db8::/64 instead."),
        ("0.0.0.0/0", "0.0.0.0/0 allows every address; leave the list empty instead."),
        ("::/0", "::/0 allows every address; leave the list empty instead."),
    ],
)
def test_invalid_entry_is_refused_with_waldurs_message(entry: str, message: str) -> None:
    with pytest.raises(NetworkAclError) as caught:
        normalize_network_acl([entry], MAX)
    assert caught.value.messages == [message]


def test_every_bad_entry_is_reported() -> None:
    with pytest.raises(NetworkAclError) as caught:
        normalize_network_acl(["10.0.0.0/8", "bogus", "10.1.2.3/8"], MAX)
    assert caught.value.messages == [
        "bogus is not a valid IP address or CIDR network.",
        "10.1.2.3/8 has host bits set; use 10.0.0.0/8 instead.",
    ]


def test_limit_counts_distinct_networks_after_normalisation() -> None:
    at_limit = [f"10.0.{n}.0/24" for n in range(MAX)]
    assert len(normalize_network_acl(at_limit + at_limit[:5] + ["10.0.0.0/24 "], MAX)) == MAX
    with pytest.raises(NetworkAclError) as caught:
        normalize_network_acl([*at_limit, "192.0.2.1"], MAX)
    assert caught.value.messages == [f"A token can have at most {MAX} network ACL entries."]


@pytest.mark.parametrize(
    ("entry", "matches", "misses"),
    [
        ("::ffff:10.0.0.0/104", "10.200.0.1", "11.0.0.1"),
        ("::ffff:198.51.100.7/128", "198.51.100.7", "198.51.100.8"),
        ("::ffff:0:0/96", "203.0.113.9", "2001:db8::1"),
        ("2001:db8::/32", "2001:db8::1", "10.0.0.1"),
        ("10.0.0.0/8", "::ffff:a00:1", "::a00:1"),
    ],
)
def test_an_ipv4_mapped_entry_matches_the_ipv4_clients_it_names(entry: str, matches: str, misses: str) -> None:
    """Client addresses are unwrapped from IPv4-mapped IPv6, so stored mapped entries are too (as IPv4 networks)."""
    network = acl_network(entry)
    assert parse_ip(matches) in network
    assert parse_ip(misses) not in network
