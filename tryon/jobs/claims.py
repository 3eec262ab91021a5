"""Claim tokens that say who holds a job, so that a job of a process known dead is retried at once.

A token is 32 hex characters, the width of a row id: 8 of a fingerprint of this host (its name and
PID namespace), 8 of the claiming process's pid, 16 random. A worker that sees a running job claimed
from its own host by a pid that no longer exists requeues it without waiting for the lease (a crash,
`kill -9`, the OOM killer). Claims of other hosts, or of a pid that exists (even a reused one), wait
for the lease as before: only a process this host can see is ever judged dead.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
from pathlib import Path

_FINGERPRINT_HEX = 8
_PID_HEX = 8


@functools.cache
def host_fingerprint() -> str:
    """8 hex characters naming this host and PID namespace (two containers on one host differ)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:_FINGERPRINT_HEX]


def new_claim_token(pid: int | None = None) -> str:
    """A fresh claim token of process `pid` (default: this one) on this host."""
    pid = os.getpid() if pid is None else pid
    return f"{host_fingerprint()}{pid:0{_PID_HEX}x}{secrets.token_hex(8)}"


def claimant_pid(token: str) -> int | None:
    """The pid that made `token` when it was made on this host, else None (another host, or a token
    of the old random form)."""
    if len(token) != 32 or not token.startswith(host_fingerprint()):
        return None
    try:
        return int(token[_FINGERPRINT_HEX : _FINGERPRINT_HEX + _PID_HEX], 16)
    except ValueError:
        return None


def process_is_gone(pid: int) -> bool:
    """True when no process `pid` runs here (a zombie counts as gone: it runs nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:             # It exists, under another user.
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False                    # No /proc (not Linux): it answered the signal, so it exists.
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def claims_of_dead_processes(tokens: list[str]) -> list[str]:
    """The tokens among `tokens` claimed by a process of this host that is gone (never our own)."""
    me = os.getpid()
    dead = []
    for token in tokens:
        pid = claimant_pid(token)
        if pid is not None and pid != me and process_is_gone(pid):
            dead.append(token)
    return dead
