"""Which addresses a webhook may reach: public ones, and those of ranges the plant allowed explicitly.

A webhook is sent by the core from inside the plant network: a URL naming the loopback, a link-local
address (the cloud metadata service at 169.254.169.254) or a private host would make the core a way in to
what only it can reach (SSRF). The sender checks every address the host resolves to, at send time."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _kind(address: Address) -> str | None:
    """What makes the address one a webhook may not reach by default; None for a public one."""
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("unspecified", address.is_unspecified), ("reserved", address.is_reserved), ("private", address.is_private),
              ("not public", not address.is_global))
    return next((name for name, applies in checks if applies), None)


def refusal(address: str, allowed: Sequence[Network]) -> str | None:
    """Why a webhook may not go to `address` (an IP address as text), or None when it may."""
    parsed: Address = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is no part of the address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    kind = _kind(parsed)
    if kind is None or any(parsed in network for network in allowed if network.version == parsed.version):
        return None
    return (f"{parsed} is {kind}: webhooks go to public hosts only, unless MES_WEBHOOK_ALLOW_PRIVATE "
            "names its range")


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """The allowed ranges, parsed; ValueError for one that is not a CIDR."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)
