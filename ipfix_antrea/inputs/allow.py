"""The exporter allow-list (`--allow CIDR`, repeatable), shared by every network input.

An empty list allows everyone (the default, as in every collector we know). Addresses are
compared as networks, so `--allow 10.0.0.0/8 --allow fd00::/8` works for both families, and an
IPv4 exporter that reaches a dual-stack socket as `::ffff:10.1.2.3` is checked as 10.1.2.3.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["AllowList"]


class AllowList:
    """Which exporter addresses may send; `allows(address)` answers for one address string."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        """``cidrs``: networks (``10.0.0.0/8``) or single addresses. Raises ValueError for text
        that is neither, naming it."""
        networks = []
        for text in cidrs:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(f"--allow {text!r} is not an IP network (e.g. 10.0.0.0/8 or fd00::/8)") from None
        self.networks = tuple(networks)
        # Exporters are few and send often: remember each address's answer.
        self.allows = lru_cache(maxsize=4096)(self._allows)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _allows(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)

    def __str__(self) -> str:
        return ", ".join(map(str, self.networks)) or "any"
