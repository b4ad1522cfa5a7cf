"""Confinement of the paths a protected folder names: nothing outside the folder or the source root.

A protected folder is untrusted input (it may come from a cloud bucket), so every path its
manifest names is checked twice: syntactically when the manifest is read (:func:`check_relative`,
:func:`check_root`), and after resolving symbolic links when a path is used (:func:`confined`).
"""
from __future__ import annotations

import ntpath
import os
import posixpath


class UnsafePathError(ValueError):
    """A path named by a manifest (or a record) that would leave its folder."""


def _parts(path: str) -> list[str]:
    """Components of ``path`` split on both separators, so a manifest written on Windows is
    checked as strictly as one written here."""
    return path.replace("\\", "/").split("/")


def check_relative(path: object, where: str) -> str:
    """Returns ``path`` if it is a safe relative path: a non-empty string, not absolute, no drive,
    no ``..`` component, no NUL.

    Args:
        path: the value read from a manifest (or a record).
        where: what names it in an error (``'OUT/manifest.json, image 'a.png': source'``).

    Raises:
        UnsafePathError: naming ``where`` and the value.
    """
    if (not isinstance(path, str) or not path or "\x00" in path or posixpath.isabs(path)
            or ntpath.isabs(path) or ntpath.splitdrive(path)[0] or ".." in _parts(path)):
        raise UnsafePathError(f"{where} {path!r} is not a safe relative path (absolute, empty, "
                              "'..' or NUL); refusing to follow it")
    return path


def check_root(path: object, where: str) -> str:
    """Returns ``path`` if it can serve as a source root: an absolute, normalised folder (no
    ``..``, no NUL) other than a file-system root, which would confine nothing.

    Raises:
        UnsafePathError: naming ``where`` and the value.
    """
    if (not isinstance(path, str) or "\x00" in path or not os.path.isabs(path)
            or ".." in _parts(path) or os.path.dirname(path) == path):
        raise UnsafePathError(f"{where} {path!r} is not a usable source root (it must be an "
                              "absolute folder without '..', not a file-system root); pass "
                              "the dataset folder explicitly")
    return path


def is_inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both taken as given: resolve first)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def confined(base: str, relative: str, where: str, what: str) -> str:
    """``base/relative``, after checking that it resolves (symbolic links followed) inside the
    resolved ``base``.

    Args:
        base: the folder the path must stay in.
        relative: a path already checked by :func:`check_relative`.
        where: what names the path in an error.
        what: the name of ``base`` in an error (``'the folder'``, ``'the source root'``).

    Returns:
        The joined path (links not resolved, so it compares equal to the paths the caller
        knows).

    Raises:
        UnsafePathError: if the path resolves outside ``base``.
    """
    path = os.path.join(base, relative)
    real, real_base = os.path.realpath(path), os.path.realpath(base)
    if not is_inside(real, real_base):
        raise UnsafePathError(f"{where}: {path} resolves to {real}, outside {what} {real_base}; "
                              "refusing to follow it")
    return path
