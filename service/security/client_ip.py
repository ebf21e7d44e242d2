"""The one rule for a request's client address, used for network ACLs, throttling and ``last_used_ip``.

The peer is the client, unless it is a trusted proxy: then ``X-Forwarded-For`` (all such headers, joined in order)
is read from the right, each trusted proxy skipped, and the first address that is not a trusted proxy is the client.
Every proxy appends the address it received the request from, so entries to the right of the last trusted proxy's
were written by trusted proxies and entries to the left by whoever the client was: the left-most entry is the
client's own choice and is never believed on that account. An unparsable entry reached on the way fails closed (no
address: nothing matches a network ACL). With no trusted proxies the header is ignored entirely.

Addresses are canonical: IPv6 scope ids (``fe80::1%eth0``) are dropped and IPv4-mapped IPv6 is unwrapped, so the
text of an address is at most 39 characters whatever a client sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_ADDRESS_CHARS = 64
"""Longer entries are refused unparsed: no address (with port and brackets) is this long."""


def parse_ip(value: str | None) -> IPAddress | None:
    """Parse ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]:80``, ``fe80::1%eth0``; canonical; None if unparsable."""
    if not value:
        return None
    value = value.strip()
    if len(value) > MAX_ADDRESS_CHARS:
        return None
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def acl_network(entry: str) -> IPNetwork:
    """The network a stored ACL entry matches: IPv4-mapped IPv6 (``::ffff:10.0.0.0/104``) as the IPv4 network.

    Client addresses are unwrapped the same way (:func:`parse_ip`), so such an entry matches the clients it names.
    """
    network = ipaddress.ip_network(entry)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFF_FFFF, network.prefixlen - 96))
    return network


def _is_trusted(address: IPAddress, trusted_proxies: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted_proxies)


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]) -> IPAddress | None:
    """The client's address: the peer, or the right-most ``X-Forwarded-For`` entry that is not a trusted proxy.

    Args:
        peer: the address of the connection's other end (the ASGI ``client``).
        forwarded_for: every ``X-Forwarded-For`` header of the request, joined with ``,`` in order; None without.
        trusted_proxies: the networks of the proxies whose header is believed (empty: the header never is).

    Returns:
        The address, or None when it cannot be told (unparsable peer, or an unparsable entry reached).
    """
    address = parse_ip(peer)
    if address is None or not forwarded_for or not _is_trusted(address, trusted_proxies):
        return address
    for entry in reversed(forwarded_for.split(",")):
        address = parse_ip(entry)
        if address is None:
            return None
        if not _is_trusted(address, trusted_proxies):
            return address
    return address  # every hop is a trusted proxy: the left-most one is the client


def forwarded_over_tls(peer: str | None, forwarded_proto: str | None, trusted_proxies: Sequence[IPNetwork]) -> bool:
    """Whether a trusted proxy says it received the request over TLS (``X-Forwarded-Proto: https``).

    The right-most value counts, as it was written by the proxy nearest to the service; a peer that is not a trusted
    proxy is never believed (with ``trusted_proxies`` empty, nobody is).
    """
    address = parse_ip(peer)
    if address is None or not forwarded_proto or not _is_trusted(address, trusted_proxies):
        return False
    return forwarded_proto.rsplit(",", 1)[-1].strip().lower() == "https"
