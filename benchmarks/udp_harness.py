"""What the UDP benchmarks share: the datagram pool, the zero-loss search, and how a collector
process is observed from outside.

* The pool: Flow-Aggregator-shaped records (`antrea_stream.py`) packed into <= 1472-octet
  messages, the template message first, written once to a file in the work directory (the bytes
  are stable for a given record count and seed). `udpsend.c` sends that file as it is;
  `bench_udp_zero_loss.py`'s Python sender uses the parsed messages.
* The search: rates double from a start rate until a step fails (or halve until one passes),
  then bisect between the last pass and the first failure to a relative resolution.
* Observation, from /proc only, so that every collector is measured the same way whatever it is
  written in: the kernel's receive queue and drop counter of a UDP socket (/proc/net/udp), the
  CPU time and peak RSS of a process and all its descendants (nfacctd forks its plugins; a
  collector with workers forks them too), and the receive buffer the socket really got
  (`ss -m`, which shows the kernel's doubled SO_RCVBUF).
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import struct
import subprocess
from collections.abc import Callable
from typing import NamedTuple

if __package__ in (None, ""):
    from antrea_stream import UDP_MESSAGE_SIZE, fa_messages  # type: ignore[no-redef]
else:
    from .antrea_stream import UDP_MESSAGE_SIZE, fa_messages

_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the datagrams ---------------------------------------------------------------------------

def pool_file(records: int, seed: int, workdir: str) -> str:
    """The pool as a file of IPFIX messages (template first), written once and reused."""
    path = os.path.join(workdir, f"fa-{records}-seed{seed}-{UDP_MESSAGE_SIZE}.ipfix")
    if not os.path.exists(path):
        with open(path + ".part", "wb") as f:
            f.writelines(fa_messages(records, seed, UDP_MESSAGE_SIZE))
        os.replace(path + ".part", path)
    return path


def datagram_pool(records: int, seed: int, workdir: str) -> tuple[bytes, list[bytes], list[int]]:
    """The template message, the data messages and their record counts (file cached in workdir)."""
    with open(pool_file(records, seed, workdir), "rb") as f:
        data = f.read()
    messages = []
    pos = 0
    while pos < len(data):
        length = struct.unpack_from(">H", data, pos + 2)[0]
        messages.append(data[pos:pos + length])
        pos += length
    template, data_messages = messages[0], messages[1:]
    # RFC 7011 sequence numbers count the data records sent before each message.
    seqs = [struct.unpack_from(">I", m, 8)[0] for m in data_messages] + [records]
    counts = [b - a for a, b in itertools.pairwise(seqs)]
    assert min(counts) > 0 and max(map(len, messages)) <= UDP_MESSAGE_SIZE
    return template, data_messages, counts


def write_stream(path: str, template: bytes, messages: list[bytes], counts: list[int], records: int) -> int:
    """A file of the pool's datagrams, cycled until ``records`` records, sequence numbers fixed."""
    seq = n = i = 0
    with open(path, "wb") as f:
        f.write(template)
        while n < records:
            m = bytearray(messages[i % len(messages)])
            struct.pack_into(">I", m, 8, seq)
            f.write(m)
            seq += counts[i % len(messages)]
            n += counts[i % len(messages)]
            i += 1
    return n


# --- the search ------------------------------------------------------------------------------

def zero_loss_search(attempt: Callable[[float], bool], start: float, max_rate: float, min_rate: float,
                     resolution: float) -> tuple[float, float | None]:
    """(highest passing rate, lowest failing rate or None) found by doubling, halving, bisecting."""
    good, bad = 0.0, None
    rate = float(start)
    while bad is None:  # doubling up from the start rate
        if attempt(rate):
            good = rate
            rate *= 2
            if rate > max_rate:
                break
        else:
            bad = rate
    while not good and bad is not None and bad / 2 >= min_rate:  # halving down if the start failed
        rate = bad / 2
        if attempt(rate):
            good = rate
        else:
            bad = rate
    while bad is not None and good and (bad - good) / good > resolution:
        mid = (good + bad) / 2
        if attempt(mid):
            good = mid
        else:
            bad = mid
    return good, bad


# --- observing a collector -------------------------------------------------------------------

def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago (for peers that cannot take port 0)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UdpSockets(NamedTuple):
    """What /proc/net/udp says about the sockets bound to one port (None: there are none)."""

    rx_queue: int | None  # bytes waiting, summed over the sockets
    drops: int | None  # datagrams the kernel dropped, summed
    sockets: int  # how many share the port (SO_REUSEPORT)


def proc_udp(port: int) -> UdpSockets:
    """The UDP sockets bound to 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
    rx = drops = None
    n = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1] == want:
                    rx = (rx or 0) + int(cols[4].split(":")[1], 16)
                    drops = (drops or 0) + int(cols[-1])
                    n += 1
    except OSError:
        pass
    return UdpSockets(rx, drops, n)


def tcp_listening(port: int) -> int:
    """How many sockets listen on port ``port`` over TCP (any address)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and cols[1].endswith(f":{port:04X}"):
                        n += 1
        except OSError:
            pass
    return n


def receive_buffers(port: int) -> list[int]:
    """The kernel's receive buffer (ss's skmem rb, i.e. twice the SO_RCVBUF asked for) of each
    UDP socket on the port."""
    try:
        out = subprocess.run(["ss", "-uamnH", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(m) for m in re.findall(r"\brb(\d+)", out)]


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (through /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the process tree, including children it has reaped."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / _CLK_TCK


def tree_memory(pid: int, key: str = "VmHWM") -> dict[int, int]:
    """``key`` (VmHWM: peak RSS; VmRSS: current) in bytes of each process in the tree."""
    out = {}
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        out[p] = int(line.split()[1]) * 1024
        except OSError:
            pass
    return out
