"""Claims: which process is running an item of a shared results store.

A claim is a file created atomically (``O_EXCL``) that names its process: pid, host, the time
it was made and the process's start time. The start time survives PID reuse: a claim whose pid
now belongs to a process that started later (a pid reused after ``kill -9``) is not that
process's, and is taken over like the claim of a process that is gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Claim", "STALE_CLAIM_S", "claim", "release", "holder", "stale", "process_start", "create_exclusive"]

#: A claim from another host older than this is taken to belong to a dead worker.
STALE_CLAIM_S = 3600.0
#: Seconds of slack between a process's start time as recorded and as read again (clock ticks).
_START_SLACK_S = 1.0


@dataclass(frozen=True)
class Claim:
    """Who holds a claim: process id, host, when it claimed, and when that process started
    (None where the system does not say)."""

    pid: int
    host: str
    time: float
    started: float | None = None

    def describe(self) -> str:
        """``pid 123 on host h since 14:02:07``: what a waiting process names."""
        return f"pid {self.pid} on host {self.host} since {time.strftime('%H:%M:%S', time.localtime(self.time))}"


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def process_start(pid: int) -> float | None:
    """When process ``pid`` of this host started (seconds since the epoch), or None when it is
    not running or the system does not say (Linux: ``/proc/PID/stat``; elsewhere psutil)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22: start time in clock ticks
        boot = _boot_time()
        if boot is not None:
            return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - no psutil, no such process, no permission: unknown
        return None


def _read(path: Path) -> Claim | None:
    try:
        info = json.loads(path.read_text())
        started = info.get("started")
        return Claim(int(info["pid"]), str(info["host"]), float(info["time"]),
                     None if started is None else float(started))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def holder(path: Path) -> Claim | None:
    """The claim at ``path`` (None when there is none or it cannot be read)."""
    return _read(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(path: Path) -> bool:
    """Whether the claim at ``path`` belongs to no running process: unreadable; of this process;
    of a process of this host that is gone, or whose pid now names a process that started after
    the claim was made (or at another time than the claimant did); older than
    :data:`STALE_CLAIM_S` when made on another host."""
    info = _read(path)
    if info is None:
        return True
    if info.host != socket.gethostname():
        return time.time() - info.time > STALE_CLAIM_S
    if info.pid == os.getpid() or not _alive(info.pid):
        return True
    now_started = process_start(info.pid)
    if now_started is None:
        return False
    if info.started is not None:
        return abs(now_started - info.started) > _START_SLACK_S
    return now_started > info.time + _START_SLACK_S  # a claim written before its process started


def create_exclusive(path: Path, text: str) -> bool:
    """Create the file ``path`` holding ``text`` unless it exists (then False), in one step: the
    text is written to a temporary file that is hard-linked into place, so no reader ever sees
    the file empty or half-written (where links are not supported: ``O_EXCL``, then write)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{socket.gethostname()}.new")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def claim(path: Path) -> bool:
    """Claim the item whose claim file is ``path`` for this process; False while another running
    process holds it. A stale claim (:func:`stale`) is taken over."""
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                     "started": process_start(os.getpid())})
    for _ in range(2):
        if create_exclusive(path, me):
            return True
        if not stale(path):
            return False
        path.unlink(missing_ok=True)
    return False


def release(path: Path) -> None:
    """Drop this process's claim at ``path`` (after writing the item, or on the way out)."""
    info = _read(path)
    if info is not None and info.pid == os.getpid() and info.host == socket.gethostname():
        path.unlink(missing_ok=True)
