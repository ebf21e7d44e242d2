"""Strict parsing of a PAT's network allow-list (Waldur's ``normalize_network_acl``, same messages)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


class NetworkAclError(ValueError):
    """One or more entries are invalid; ``messages`` lists each problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def normalize_network_acl(entries: Sequence[str], max_entries: int) -> list[str]:
    """Canonical CIDRs: bare addresses widen to /32 or /128, IPv6 compressed, duplicates dropped (first kept).

    Raises:
        NetworkAclError: an entry is empty, unparseable, has host bits set (the corrected network is suggested),
            or allows every address; or there are more than ``max_entries`` distinct networks.
    """
    networks: list[str] = []
    errors: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            errors.append("Network ACL entries must be non-empty strings.")
            continue
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            try:
                suggestion = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                errors.append(f"{entry} is not a valid IP address or CIDR network.")
            else:
                errors.append(f"{entry} has host bits set; use {suggestion} instead.")
            continue
        if network.prefixlen == 0:
            errors.append(f"{entry} allows every address; leave the list empty instead.")
            continue
        if str(network) not in networks:
            networks.append(str(network))
    if errors:
        raise NetworkAclError(errors)
    if len(networks) > max_entries:
        raise NetworkAclError([f"A token can have at most {max_entries} network ACL entries."])
    return networks
