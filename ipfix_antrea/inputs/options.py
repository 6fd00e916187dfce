"""What the network inputs share: reading spec options (`?rcvbuf=8M&reuseport=1`), resolving the
address to bind, binding one socket or several on one port, and writing addresses back the way
specs and logs show them.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable
from typing import Any

from ..units import parse_size
from . import InputError, InputSpec

__all__ = ["size_option", "bool_option", "resolve_bind", "bind_sockets", "format_address", "socket_address"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def size_option(spec: InputSpec, key: str, default: int | None) -> int | None:
    """The spec's ``key`` option as a size, else ``default``."""
    if key not in spec.options:
        return default
    try:
        return parse_size(spec.options[key])
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"{spec}: {key}: {exc}") from None


def bool_option(spec: InputSpec, key: str, default: bool) -> bool:
    """The spec's ``key`` option as a boolean (1/0, true/false, yes/no, on/off; bare = true)."""
    if key not in spec.options:
        return default
    value = spec.options[key].strip().lower()
    if value in _TRUE or value == "":
        return True
    if value in _FALSE:
        return False
    raise InputError(f"{spec}: {key}={spec.options[key]!r} is not a boolean (1/0, true/false)")


def resolve_bind(spec: InputSpec, host: str, port: int, kind: int) -> tuple[int, tuple[Any, ...]]:
    """The (family, sockaddr) to bind ``host:port``; ``*`` or an empty host means every IPv4
    address (``[::]`` for every address of both families)."""
    if host in ("", "*"):
        host = "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"{spec}: cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def bind_sockets(spec: InputSpec, host: str, port: int, kind: int, count: int, *, reuse_port: bool,
                 prepare: Callable[[socket.socket, bool], None] | None = None) -> list[socket.socket]:
    """``count`` sockets of ``kind`` bound to ``host:port``, with SO_REUSEPORT when
    ``reuse_port`` or when there are several (the kernel then spreads exporters over them). With
    port 0 the first socket picks a free port and the others bind that one. ``prepare(sock,
    first)`` sets options before each bind. Raises InputError naming the input when it cannot
    listen; no socket is left open then."""
    family, sockaddr = resolve_bind(spec, host, port, kind)
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind)
            socks.append(sock)
            if reuse_port or count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if prepare is not None:
                prepare(sock, len(socks) == 1)
            sock.bind(sockaddr)
            sockaddr = sock.getsockname()  # port 0: the next ones bind the port the first got
    except OSError as exc:
        for sock in socks:
            sock.close()
        raise InputError(f"{spec}: cannot listen: {exc.strerror or exc}") from exc
    return socks


def socket_address(scheme: str, sock: socket.socket) -> str:
    """What ``sock`` is bound to, as a spec: ``udp://127.0.0.1:4739``, ``tcp://[::]:4739``."""
    bound = sock.getsockname()
    return f"{scheme}://{format_address(bound[0])}:{bound[1]}"


def format_address(host: str) -> str:
    """An address as it appears in a spec: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host
