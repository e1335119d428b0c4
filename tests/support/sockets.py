"""TCP connections as the kernel sees them (/proc/net/tcp{,6}): which of a process's sockets
are open to a port, and which connections hold bytes their server has not read yet.

Used to show, from outside the gateway, that an upstream exchange is pinned or was cancelled:
- a socket the gateway owns (its inode is among /proc/PID/fd) to the registry's port, still
  ESTABLISHED, is a connection the gateway holds (in use or idle in its pool);
- a registry-side socket with unread bytes (rx_queue > 0) is a request the registry has not read
  (it is stopped, say); once the gateway hangs up, that socket turns CLOSE_WAIT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
          "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
          "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str
    rx_queue: int
    inode: int


def _port(address: str) -> int:
    return int(address.rpartition(":")[2], 16)


def tcp_sockets() -> list[TcpSocket]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            queues = fields[4].split(":")
            found.append(TcpSocket(_port(fields[1]), _port(fields[2]),
                                   STATES.get(fields[3], fields[3]), int(queues[1], 16),
                                   int(fields[9])))
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` has open (ours: same user, readable)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def connections_to(pid: int, port: int) -> list[TcpSocket]:
    """Process `pid`'s ESTABLISHED connections to `port` on this machine."""
    owned = socket_inodes(pid)
    return [s for s in tcp_sockets()
            if s.inode in owned and s.remote_port == port and s.state == "ESTABLISHED"]


def unread_on(port: int) -> list[TcpSocket]:
    """Server-side sockets of `port` holding bytes the server has not read (rx_queue > 0)."""
    return [s for s in tcp_sockets()
            if s.local_port == port and s.state != "LISTEN" and s.rx_queue > 0]
