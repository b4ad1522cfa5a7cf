"""Writing a synthetic dataset tree once: the completeness record, refusal of foreign data, a
clean rebuild. Shared by the SYSU-MM01 / RegDB and the pedes writers (the Market-1501 writer keeps
its own, older record).

A tree is complete when its generator record (``synthetic.json``, written last) equals the one
asked for, every file it lists exists and every folder holds the image count it lists; a complete
tree is never rewritten. A rebuild first marks the folder as in progress, so an interrupted build
is recognised as ours and redone, while a dataset the generator did not make is never touched.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import time
from typing import Callable, Sequence

from ...io import atomic_write_bytes, atomic_write_json
from .market1501 import GENERATOR_RECORD

logger = logging.getLogger(__name__)

IN_PROGRESS = ".synthetic_in_progress"
IMAGE_SUFFIXES = (".jpg", ".bmp")


def count_images(folder: pathlib.Path) -> int:
    """Number of ``.jpg`` / ``.bmp`` files anywhere under ``folder`` (hidden files excluded)."""
    return sum(1 for _, _, names in os.walk(folder) for n in names
               if n.endswith(IMAGE_SUFFIXES) and not n.startswith("."))


def is_complete(data_dir: pathlib.Path, record: dict) -> bool:
    """Whether ``data_dir`` holds ``record``, the files it lists and its image counts
    (``record['counts']``: ``{folder: images}``; ``record['files']``: relative paths)."""
    try:
        if json.loads((data_dir / GENERATOR_RECORD).read_text()) != record:
            return False
    except (OSError, ValueError):
        return False
    if not all((data_dir / name).is_file() for name in record["files"]):
        return False
    return all(count_images(data_dir / folder) == n for folder, n in record["counts"].items())


def prepare_dir(data_dir: pathlib.Path, folders: Sequence[str], what: str,
                files: Sequence[str] = ()) -> None:
    """Empties the ``folders`` and removes the ``files`` of an earlier synthetic dataset;
    refuses to touch a dataset the generator did not make.

    Raises:
        FileExistsError: ``data_dir`` holds non-empty ``folders`` or one of ``files`` but no
            sign of the generator.
    """
    ours = (data_dir / GENERATOR_RECORD).exists() or (data_dir / IN_PROGRESS).exists()
    foreign = any((data_dir / f).is_dir() and any((data_dir / f).iterdir()) for f in folders) \
        or any((data_dir / name).exists() for name in files)
    if foreign and not ours:
        raise FileExistsError(f"{data_dir} already holds a {what} dataset that was not made by "
                              "the synthetic generator; refusing to overwrite it")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / GENERATOR_RECORD).unlink(missing_ok=True)  # a rebuild must not look complete
    atomic_write_bytes(data_dir / IN_PROGRESS, b"")
    for name in files:
        (data_dir / name).unlink(missing_ok=True)
    for folder in folders:
        if (data_dir / folder).is_dir():
            shutil.rmtree(data_dir / folder)
        (data_dir / folder).mkdir()


def build(data_dir: pathlib.Path, record: dict, folders: Sequence[str], what: str,
          write: Callable[[], object], files: Sequence[str] = ()) -> pathlib.Path:
    """Runs ``write`` (which returns a summary for the log) into a prepared ``data_dir`` unless
    it is complete; the record is written last.

    Args:
        data_dir: the dataset's folder.
        record: the generator record (see :func:`is_complete`).
        folders: image folders emptied before writing.
        what: the dataset's name, for messages.
        write: writes every image and annotation file.
        files: annotation files removed before writing (every spelling a reader accepts).
    """
    if is_complete(data_dir, record):
        logger.info("Synthetic %s already complete at %s; not rewriting", what, data_dir)
        return data_dir
    start = time.perf_counter()
    prepare_dir(data_dir, folders, what, files)
    summary = write()
    atomic_write_json(data_dir / GENERATOR_RECORD, record)
    (data_dir / IN_PROGRESS).unlink(missing_ok=True)
    logger.info("Wrote synthetic %s (%s) to %s in %.1f s", what, summary, data_dir,
                time.perf_counter() - start)
    return data_dir
