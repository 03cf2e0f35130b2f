"""Cleaning up after a private dockerd: the processes that still name its temp dir
(containerd, shims) killed by pid, the mounts left below it unmounted (deepest first,
lazily if busy), and the dir removed only once nothing is mounted there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


def cmdline_text(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pids_naming(path: Path) -> list[int]:
    """Pids of the processes whose command line names `path` (a unique temp dir)."""
    needle = os.fspath(path)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if needle in cmdline_text(int(entry.name)):
                found.append(int(entry.name))
    return found


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape")  # mountinfo escapes " " as \040


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = os.fspath(path).rstrip("/")
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(path: Path) -> list[str]:
    """Unmount everything at or below `path` (lazily if busy); returns what was left."""
    for point in mounts_under(path):
        res = subprocess.run(["umount", point], capture_output=True, timeout=30, check=False)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)
    return mounts_under(path)


def remove_tree(path: Path) -> None:
    """Unmount whatever is below `path`, then delete it; refuse if a mount stays."""
    if not path.exists():
        return
    left = unmount_under(path)
    assert not left, f"cannot unmount {left}; not deleting {path}"
    shutil.rmtree(path, ignore_errors=True)
