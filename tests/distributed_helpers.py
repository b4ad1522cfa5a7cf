"""The processes of a torchrun job, read from Linux's /proc (psutil is not a dependency): find a
rank's worker, kill it, check that none is left; and waiting with a deadline.

torchrun starts each worker with ``start_new_session=True``, so killing torchrun's process group
does not reach the workers: a test kills them one by one. A process is named by its pid *and*
start time, so that a pid the system reused for another process after ours ended is never
signalled.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Process:
    pid: int
    start_time: int  # clock ticks after boot, /proc/<pid>/stat field 22


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 on of /proc/<pid>/stat (state, ppid, ...), or None if there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()  # the command name may hold spaces and ')'


def process(pid: int) -> Process | None:
    fields = _stat_fields(pid)
    return None if fields is None else Process(pid, int(fields[19]))


def alive(proc: Process) -> bool:
    """Whether ``proc`` still runs (a zombie, dead but not yet reaped, does not)."""
    fields = _stat_fields(proc.pid)
    return fields is not None and int(fields[19]) == proc.start_time and fields[0] != "Z"


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process now."""
    parents = {}
    for name in os.listdir("/proc"):
        fields = _stat_fields(int(name)) if name.isdigit() else None
        if fields is not None:
            parents[int(name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[Process]:
    """The processes below ``pid``, nearest first."""
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return [p for p in map(process, found) if p is not None]


def environment(proc: Process) -> dict[str, str]:
    """The environment ``proc`` was started with ({} if it is gone)."""
    try:
        with open(f"/proc/{proc.pid}/environ", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in data.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def workers_by_rank(launcher_pid: int) -> dict[int, Process]:
    """``{rank: worker}`` of the torchrun process ``launcher_pid``: its nearest descendants with
    ``RANK`` in their environment."""
    workers = {}
    for proc in descendants(launcher_pid):
        rank = environment(proc).get("RANK")
        if rank is not None and alive(proc):
            workers.setdefault(int(rank), proc)
    return workers


def kill(proc: Process) -> bool:
    """SIGKILL to ``proc`` if it still runs; whether it did."""
    if not alive(proc):
        return False
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition: Callable[[], T], timeout: float, what: str, every: float = 0.02) -> T:
    """Polls ``condition`` until it returns something true, which is returned.

    Raises:
        AssertionError: naming ``what`` if ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(every)


def complete_lines(path: os.PathLike | str) -> list[dict]:
    """The JSON lines of a manifest part that are complete (a line being written is not)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data[:data.rfind(b"\n") + 1].splitlines()]
