"""The client's address: the peer, or the first ``X-Forwarded-For`` entry when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(value: str | None) -> IPAddress | None:
    """Parse ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]:80``; unwrap IPv4-mapped IPv6; None if unparseable."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]) -> IPAddress | None:
    """The address to check network ACLs against and to record as ``last_used_ip``."""
    peer_address = parse_ip(peer)
    if forwarded_for and peer_address is not None and any(peer_address in net for net in trusted_proxies):
        return parse_ip(forwarded_for.split(",", 1)[0])
    return peer_address
