"""Operating-system locks on a protected folder, so two runs never write one part at once.

Two lock files live in a folder being written:

* ``.lock-{part}``: held by the writer of that manifest part for its whole run, taken without
  waiting; a second writer of the same part is refused at once (:class:`FolderLockedError`).
  Writers of different parts (ranks of a sharded run) may run together.
* ``.lock``: the folder lock, held for short moments only (checking or creating the manifest,
  cleaning temporary files, merging parts); writers wait for it.

The locks are ``fcntl.flock`` locks on POSIX and ``msvcrt.locking`` byte locks on Windows; both
are released by the operating system when the process ends, however it ends. Where neither
exists a warning is logged and the run goes on unlocked. Lock files are never deleted (deleting
a lock file another process has open would let two processes "hold" it).
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None

logger = logging.getLogger(__name__)

FOLDER_LOCK = ".lock"
PART_LOCK_PREFIX = ".lock-"


class FolderLockedError(OSError):
    """Another live run holds the lock this run needs."""


def part_lock_name(part: int | str) -> str:
    """File name of the lock of one manifest part's writer."""
    return f"{PART_LOCK_PREFIX}{part}"


def _lock(fd: int, blocking: bool) -> bool:
    """Locks the open file ``fd``; False if another process holds it (non-blocking only)."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except (BlockingIOError, PermissionError):
            return False
        return True
    if msvcrt is not None:
        try:  # LK_LOCK retries for about 10 s, then raises
            msvcrt.locking(fd, msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
        except OSError:
            if blocking:
                raise
            return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif msvcrt is not None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def try_lock(path: str, blocking: bool = False) -> int | None:
    """Opens (creating it) and locks the file ``path``.

    Returns:
        The locked file descriptor (pass it to :func:`unlock`), or None if another process
        holds the lock and ``blocking`` is False.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    if _lock(fd, blocking):
        return fd
    os.close(fd)
    return None


def unlock(fd: int) -> None:
    """Releases and closes a lock taken by :func:`try_lock`."""
    try:
        _unlock(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def part_lock(folder: str, part: int | str) -> Iterator[None]:
    """Holds the lock of ``folder``'s writer of ``part``, refusing at once if it is taken.

    Raises:
        FolderLockedError: if another run writes this part of ``folder``.
    """
    path = os.path.join(folder, part_lock_name(part))
    if fcntl is None and msvcrt is None:
        logger.warning("%s: no file locking on this platform; nothing stops another run from "
                       "writing into this folder at the same time", folder)
    fd = try_lock(path)
    if fd is None:
        raise FolderLockedError(f"another run is writing into {folder} (lock file {path} is "
                                "held); wait for it to end or choose another output folder")
    try:
        yield
    finally:
        unlock(fd)


@contextlib.contextmanager
def folder_lock(folder: str) -> Iterator[None]:
    """Holds ``folder``'s short-term lock, waiting for it if another writer has it."""
    fd = try_lock(os.path.join(folder, FOLDER_LOCK), blocking=True)
    try:
        yield
    finally:
        unlock(fd)


def other_writers(folder: str, part: int | str) -> list[str]:
    """Lock files of ``folder``'s other parts whose writers are live now."""
    live = []
    mine = part_lock_name(part)
    for name in sorted(os.listdir(folder)):
        if not name.startswith(PART_LOCK_PREFIX) or name == mine:
            continue
        fd = try_lock(os.path.join(folder, name))
        if fd is None:
            live.append(name)
        else:
            unlock(fd)
    return live
