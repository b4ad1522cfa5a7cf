"""Writing a protected folder: the batch loop, resume, refusal of other settings, skipped inputs.

Each finished batch writes its PNG files (atomically) and then appends one JSON line to the run's
manifest part; the parts are merged into ``manifest.json`` at the end. Writing a batch costs the
batch's own bytes, never a rewrite of the whole manifest, and writers with different ``part``
names never write the same file.

Before anything is written a run checks that it cannot destroy anything (:func:`check_records`):
no output path is, or resolves through links to, an input; no output lies outside the output
folder; and no output would replace a file of the source folder that the folder's manifest does
not list. A run then holds its part's lock (see :mod:`.lock`) to its end, so a second run of the
same part is refused at once; it checks or creates the manifest under the folder lock, so a run
with another identity or source root is refused whatever its part.

Resume: an image is kept only if its entry names the same source and its PNG is as written (size
and SHA-256, or for older entries without a hash, a PNG that decodes); everything else, inputs
listed as skipped included, is protected again.

Images whose stored version misses the protector's feature bound are stored and listed as such
in the manifest; ``on_missed_constraint`` says whether the run then says nothing, warns, or
fails (:func:`check_constraint`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import torch
from tqdm import tqdm

from ..io import ImageReadError, atomic_write_json, load_image_tensor, remove_temp_files, write_png
from ..protect import Protector
from .folder import MANIFEST, PART_PATTERN, ProtectedFolder, StoredImage, part_name
from .identity import ProtectionIdentity
from .lock import (FOLDER_LOCK, folder_lock, other_writers, part_lock, part_lock_name, try_lock,
                   unlock)
from .paths import UnsafePathError, check_relative, check_root, is_inside
from .records import ImageRecord

logger = logging.getLogger(__name__)

#: what a run does about stored images that miss the feature bound
ON_MISSED_CONSTRAINT = ("keep", "warn", "fail")
#: ``batch_size='auto'``: images first tried per protector call on CUDA, halved on
#: out-of-memory until a call fits; that size is kept for the rest of the run
AUTO_BATCH_CUDA = 256
#: ``batch_size='auto'`` on other devices (host memory is rarely the limit, and larger batches
#: do not run faster on a CPU)
AUTO_BATCH_OTHER = 32
#: the error PyTorch raises when a device runs out of memory (``torch.OutOfMemoryError`` from
#: 2.5, ``torch.cuda.OutOfMemoryError`` before)
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def check_part(part: int | str) -> str:
    """``part`` as the name of a manifest part (letters, digits, ``_``, ``.``, ``-``).

    Raises:
        ValueError: for a name that could leave the folder or hide a file.
    """
    name = str(part)
    if not _PART.fullmatch(name):
        raise ValueError(f"part {name!r}: a manifest part is named with letters, digits, '_', "
                         "'.' and '-' only")
    return name


# ---------------------------------------------------------------- refusing harmful runs


def check_records(records: Sequence[ImageRecord], out_dir: str, source_root: str,
                  part: int | str = 0) -> None:
    """Refuses, before anything is written, a run that could overwrite or leave anything.

    Raises:
        UnsafePathError: for a record path leaving the source root, or an output path leaving
            ``out_dir`` (links followed).
        ValueError: if an output would overwrite an input or a file of the source folder that
            ``out_dir``'s manifest does not list, or two inputs would be stored as one file.
    """
    inputs = _check_inputs(records, source_root)
    real_out, real_root = os.path.realpath(out_dir), os.path.realpath(source_root)
    outputs = {}
    for record in records:
        target = os.path.join(out_dir, record.output_key)
        if record.output_key in outputs:
            raise ValueError(f"{outputs[record.output_key]} and {record.path} would both be "
                             f"stored as {target}; rename one of them")
        outputs[record.output_key] = record.path
        _check_output(target, out_dir, real_out, inputs)
    for name in _own_files(out_dir, part):
        _check_output(os.path.join(out_dir, name), out_dir, real_out, inputs)
    _check_source_files(records, out_dir, real_root, source_root)


def _check_inputs(records: Sequence[ImageRecord], source_root: str) -> dict[str, str]:
    """``{resolved input path: input path}``, checking each record against the source root."""
    real_root = os.path.realpath(source_root)
    inputs = {}
    for record in records:
        where = f"record {record.path}"
        check_relative(record.relpath, f"{where}: relpath")
        check_relative(record.output_key, f"{where}: output key")
        real = os.path.realpath(record.path)
        if not is_inside(real, real_root):
            raise UnsafePathError(f"{where}: resolves to {real}, outside the source root "
                                  f"{real_root}")
        if os.path.realpath(os.path.join(source_root, record.relpath)) != real:
            raise ValueError(f"{where}: its relpath {record.relpath!r} does not name it under "
                             f"the source root {source_root}")
        inputs[real] = record.path
    return inputs


def _check_output(target: str, out_dir: str, real_out: str, inputs: dict[str, str]) -> None:
    real = os.path.realpath(target)
    if real in inputs:
        raise ValueError(f"writing {target} would overwrite the input {inputs[real]}; choose an "
                         "output folder outside the dataset folder")
    if not is_inside(real, real_out):
        raise UnsafePathError(f"{target} resolves to {real}, outside the output folder "
                              f"{out_dir}; refusing to write through a link")


def _own_files(out_dir: str, part: int | str) -> list[str]:
    """Names of the files a run writes or removes besides the PNGs (manifest, parts, locks)."""
    names = [MANIFEST, FOLDER_LOCK, part_name(part), part_lock_name(part)]
    if os.path.isdir(out_dir):
        names += [n for n in os.listdir(out_dir) if n.startswith((".lock", "manifest."))]
    return names


def _check_source_files(records: Sequence[ImageRecord], out_dir: str, real_root: str,
                        source_root: str) -> None:
    """Refuses outputs that would replace a file of the source folder not listed as ours."""
    targets = {r.output_key: os.path.join(out_dir, r.output_key) for r in records}
    in_the_way = [key for key, target in targets.items() if os.path.lexists(target)
                  and is_inside(os.path.realpath(target), real_root)]
    if not in_the_way:
        return
    listed = set()
    if os.path.exists(os.path.join(out_dir, MANIFEST)):
        listed = set(ProtectedFolder.open(out_dir).images)
    foreign = [key for key in in_the_way if key not in listed]
    if foreign:
        raise ValueError(f"the output folder {out_dir} lies in the source folder {source_root} "
                         f"and already holds {os.path.join(out_dir, foreign[0])} "
                         f"({len(foreign)} such files), a file its manifest does not list; "
                         "choose an output folder outside the dataset folder")


# ---------------------------------------------------------------- opening and resuming


def open_for_writing(out_dir: str, identity: ProtectionIdentity,
                     source_root: str) -> ProtectedFolder:
    """Opens ``out_dir`` to add images made with ``identity``, creating its manifest if needed.

    The caller holds the folder lock (:func:`protect_records` does).

    Raises:
        ValueError: if the folder holds images protected with other settings or from another
            source root, or its manifest is corrupt (it is then left as it is).
    """
    os.makedirs(out_dir, exist_ok=True)
    if not ProtectedFolder.exists(out_dir):
        folder = ProtectedFolder(out_dir, identity, source_root)
        atomic_write_json(os.path.join(out_dir, MANIFEST), folder.to_manifest())
        return folder
    folder = ProtectedFolder.open(out_dir)
    if not folder.identity.accepts(identity):
        raise ValueError(
            f"{os.path.join(out_dir, MANIFEST)}: this folder holds images protected with other "
            f"settings ({'; '.join(folder.identity.differences(identity)[:6])}); choose another "
            f"output folder")
    if not _same_folder(folder.source_root, source_root):
        raise ValueError(
            f"{os.path.join(out_dir, MANIFEST)}: this folder holds images of the source root "
            f"{folder.source_root}, not of {source_root}; choose another output folder")
    return folder


def _same_folder(first: str, second: str) -> bool:
    return (os.path.normpath(first) == os.path.normpath(second)
            or os.path.realpath(first) == os.path.realpath(second))


def pending(records: Iterable[ImageRecord], folder: ProtectedFolder) -> list[ImageRecord]:
    """Records still to protect: no entry, an entry of another source, or a stored PNG that is
    not as written (see :meth:`ProtectedFolder.stored_problem`). Inputs listed as skipped are
    retried."""
    todo = []
    for record in records:
        image = folder.images.get(record.output_key)
        problem = "not stored" if image is None else (
            f"made from {image.source}" if image.source != record.relpath
            else folder.stored_problem(image))
        if problem:
            if image is not None:
                logger.warning("%s: %s; protecting it again",
                               os.path.join(folder.path, record.output_key), problem)
            todo.append(record)
    return todo


def _clean_temp_files(out_dir: str, part: str) -> None:
    """Removes temporary files of interrupted writes, unless another writer is live."""
    live = other_writers(out_dir, part)
    if live:
        logger.debug("%s: not cleaning temporary files while %s are held", out_dir, live)
        return
    removed = remove_temp_files(out_dir)
    if removed:
        logger.info("%s: removed %d temporary files of an interrupted run", out_dir,
                    len(removed))


def _drop_unfinished_line(path: str) -> None:
    """Cuts a last line left unfinished by a killed run from this writer's own part, so the
    lines appended next are not glued to it (readers ignore such a line anyway)."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            logger.warning("%s: dropping an unfinished last line", path)
            handle.truncate(data.rfind(b"\n") + 1)
            handle.flush()
            os.fsync(handle.fileno())


# ---------------------------------------------------------------- the batch loop


def load_batch(records: Sequence[ImageRecord], height: int, width: int, skip_corrupt: bool
               ) -> tuple[list[ImageRecord], list[torch.Tensor], list[dict]]:
    """Reads ``records`` as ``(3, height, width)`` tensors in [0, 1].

    Returns:
        ``(kept, tensors, skipped)``: the records read and their tensors, and for each
        unreadable one (only with ``skip_corrupt``) ``{'source': relpath, 'error': message}``.

    Raises:
        ImageReadError: for an unreadable image without ``skip_corrupt``.
    """
    kept, tensors, skipped = [], [], []
    for record in records:
        try:
            tensors.append(load_image_tensor(record.path, height, width))
            kept.append(record)
        except ImageReadError as error:
            if not skip_corrupt:
                raise
            logger.warning("skipping %s", error)
            skipped.append({"source": record.relpath, "error": str(error)})
    return kept, tensors, skipped


def _stored_images(records: Sequence[ImageRecord], result, seconds: float,
                   files: Sequence[bytes]) -> list[StoredImage]:
    def value(tensor, i, cast):
        return None if tensor is None else cast(tensor[i])

    return [StoredImage(key=r.output_key, source=r.relpath, split=r.split, pid=r.pid,
                        camid=r.camid, distance=value(result.distance, i, float),
                        constraint_met=value(result.constraint_met, i, bool),
                        replaced_fraction=value(result.replaced_fraction, i, float),
                        seconds=seconds / len(records),
                        steps=value(getattr(result, "steps", None), i, int),
                        png_sha256=hashlib.sha256(files[i]).hexdigest(),
                        png_bytes=len(files[i]))
            for i, r in enumerate(records)]


def _append(path: str, record: dict) -> None:
    """Appends one JSON line and flushes it to disk."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _is_news(folder: ProtectedFolder, stored: list, skipped: list[dict]) -> bool:
    """Whether a batch changes the folder (a skip recorded before, same error, does not)."""
    known = {item["source"]: item for item in folder.skipped}
    return bool(stored) or any(known.get(item["source"]) != item for item in skipped)


def check_batch_size(value: int | str, name: str = "batch_size") -> int | str:
    """``value`` if it is a batch size: an int >= 1 or ``'auto'``.

    Raises:
        ValueError: naming ``name`` and the accepted values.
    """
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"{name} must be an integer >= 1 or 'auto', got {value!r}")


class _BatchFit:
    """The images per protector call: fixed, or with ``'auto'`` the largest that fits, found
    on the first calls by halving after each out-of-memory error (and halved again should a
    later call run out of memory)."""

    def __init__(self, batch_size: int | str, device) -> None:
        self.auto = check_batch_size(batch_size) == "auto"
        if self.auto:
            batch_size = AUTO_BATCH_CUDA if torch.device(device).type == "cuda" \
                else AUTO_BATCH_OTHER
        self.size, self.device, self.found = batch_size, device, not self.auto

    def can_shrink(self, tried: int) -> bool:
        """Whether a call of ``tried`` images that ran out of memory may be split."""
        return self.auto and tried > 1

    def shrink(self, tried: int) -> None:
        """After a call of ``tried`` (> 1) images ran out of memory: ``tried // 2`` from now
        on, the device's cached memory released."""
        if torch.device(self.device).type == "cuda":
            torch.cuda.empty_cache()
        logger.info("batch size auto: %d images do not fit on %s; trying %d", tried,
                    self.device, tried // 2)
        self.size, self.found = tried // 2, False

    def fits(self) -> None:
        """Records that a call of the current size ran: the size is found."""
        if not self.found:
            logger.info("batch size auto: %d images per protector call on %s", self.size,
                        self.device)
        self.found = True


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device running out of memory: PyTorch's ``OutOfMemoryError``, or
    the ``RuntimeError`` a cuDNN / cuBLAS allocation failure raises."""
    return isinstance(error, OUT_OF_MEMORY) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def _protect_batch(protector: Protector, kept: Sequence[ImageRecord],
                   tensors: Sequence[torch.Tensor], device,
                   fit: _BatchFit) -> tuple[object, float]:
    """Protects one loaded batch in calls of at most ``fit.size`` images; ``(result,
    seconds)`` (``(None, 0.0)`` for an empty one; the seconds include calls that ran out of
    memory)."""
    if not kept:
        return None, 0.0
    began, results, start = time.perf_counter(), [], 0
    while start < len(kept):
        stop = min(start + fit.size, len(kept))
        result, error = _try_protect(protector, kept[start:stop], tensors[start:stop], device)
        if error is not None:
            if not fit.can_shrink(stop - start):
                raise error
            del error  # its traceback holds the failed call's tensors: free them first
            fit.shrink(stop - start)
            continue
        fit.fits()
        results.append(result)
        start = stop
    return _concatenated(results), time.perf_counter() - began


def _try_protect(protector: Protector, kept: Sequence[ImageRecord],
                 tensors: Sequence[torch.Tensor], device) -> tuple[object, Exception | None]:
    """One protector call: ``(result, None)``, or ``(None, error)`` if the device ran out of
    memory (other errors are raised)."""
    try:
        # keyed draws: with a seed, an image's PNG does not depend on the batching or the run
        return protector.protect(torch.stack(list(tensors)).to(device),
                                 keys=[r.output_key for r in kept]), None
    except RuntimeError as error:  # OUT_OF_MEMORY is one
        if not is_out_of_memory(error):
            raise
        return None, error


def _concatenated(results: Sequence) -> object:
    """One result of the protector's result type from consecutive ones.

    Per-image fields (tensors whose first dimension is the part's image count) are
    concatenated; any other field (None, a scalar, a setting) must be equal in every part and
    is kept once. A subclass of :class:`~torchreid_pixelfade.protect.ProtectionResult` with
    fields of its own gets the same treatment.
    """
    if len(results) == 1:
        return results[0]
    counts = [len(r.images) for r in results]
    values = {}
    for field in dataclasses.fields(results[0]):
        parts = [getattr(r, field.name) for r in results]
        if all(isinstance(p, torch.Tensor) and p.dim() and len(p) == n
               for p, n in zip(parts, counts)):
            values[field.name] = torch.cat(parts)
        elif all(_same(p, parts[0]) for p in parts):
            values[field.name] = parts[0]
        else:
            raise ValueError(f"cannot join the results of split protector calls: field "
                             f"{field.name!r} is neither per image nor equal in every call")
    return type(results[0])(**values)


def _same(first, second) -> bool:
    """Equality that also holds for equal tensors."""
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        return (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
                and first.shape == second.shape and bool((first == second).all()))
    return first == second


def _store_batch(folder: ProtectedFolder, part_path: str, kept: Sequence[ImageRecord], result,
                 seconds: float, skipped: list[dict]) -> bool:
    """Writes a protected batch's PNG files (atomically), then appends its manifest record;
    whether anything new was recorded. Runs on the writer thread, the only one that touches
    ``folder`` while batches run."""
    stored = []
    if kept:
        files = [write_png(os.path.join(folder.path, record.output_key), image)
                 for record, image in zip(kept, result.images)]
        stored = _stored_images(kept, result, seconds, files)
    record = {"images": {s.key: s.to_dict() for s in stored}, "skipped": skipped}
    if not _is_news(folder, record["images"], record["skipped"]):
        return False
    _append(part_path, record)
    folder.add(record, part_path)
    return True


def merge_parts(folder: ProtectedFolder, part: int | str | None = None) -> ProtectedFolder:
    """Merges the folder's manifest and parts, as they are on disk, into ``manifest.json``
    (atomically), then removes the parts that no live writer appends to.

    Args:
        folder: the folder.
        part: the caller's own part (it holds that part's lock), if any.

    Returns:
        The merged folder.
    """
    with folder_lock(folder.path):
        return _merge(folder.path, part)


def _merge(path: str, part: int | str | None) -> ProtectedFolder:
    """:func:`merge_parts` for a caller that holds the folder lock."""
    merged = ProtectedFolder.open(path)
    atomic_write_json(os.path.join(path, MANIFEST), merged.to_manifest())
    for part_path in glob.glob(os.path.join(path, PART_PATTERN)):
        name = os.path.basename(part_path)[len("manifest.part-"):-len(".jsonl")]
        if part is not None and name == str(part):
            os.remove(part_path)
            continue
        fd = try_lock(os.path.join(path, part_lock_name(name)))
        if fd is not None:  # no live writer: it can only start after this merge
            os.remove(part_path)
            unlock(fd)
    return merged


def protect_records(protector: Protector, records: Sequence[ImageRecord], out_dir: str,
                    identity: ProtectionIdentity, source_root: str, batch_size: int | str = 32,
                    device: str | torch.device = "cpu", skip_corrupt: bool = False,
                    progress: bool = True, part: int | str = 0,
                    on_missed_constraint: str = "warn") -> ProtectedFolder:
    """Protects images into ``out_dir`` as PNG files; returns the folder.

    Args:
        protector: any protector; its model must be on ``device``.
        records: images to protect (see :func:`records_from_dataset`).
        out_dir: output folder; created if needed. Inputs are never modified.
        identity: what identifies the protection (see :func:`protection_identity`); a folder
            holds one identity only. Images are resized to and stored at its size.
        source_root: the dataset folder the records' relative paths start from.
        batch_size: images per protector call, or ``'auto'``: on CUDA the largest that fits
            (from :data:`AUTO_BATCH_CUDA`, halved on each out-of-memory error until a call
            runs, then kept; it depends on the memory free at the time), elsewhere
            :data:`AUTO_BATCH_OTHER`. With keyed draws (as here) and PixelFade's per-image
            settings a seeded image's result does not depend on the size, up to kernels
            that differ with it (see :class:`~torchreid_pixelfade.protect.PixelFade`).
        device: where images are protected.
        skip_corrupt: list unreadable images in the manifest instead of raising (they are
            retried by every later run).
        progress: show a tqdm progress bar.
        part: name of this writer's manifest part (and lock); writers of different parts may
            run together.
        on_missed_constraint: what to do when stored images of ``records`` (of this run or
            an earlier one) miss the protector's feature bound: ``'keep'`` them silently,
            ``'warn'`` (default) or ``'fail'`` (:class:`ConstraintMissedError`), in every case
            after storing and recording every image.

    Raises:
        ConstraintMissedError: with ``on_missed_constraint='fail'``, if any image misses it.
        ImageReadError: for an unreadable image when ``skip_corrupt`` is False.
        ValueError: if ``out_dir`` holds images protected with other settings or from another
            source root, its manifest is corrupt, or the run could overwrite an input or a file
            of the source folder, or write outside ``out_dir`` (see :func:`check_records`).
        FolderLockedError: if another run is writing the same part of ``out_dir``.
    """
    out_dir, part = os.fspath(out_dir), check_part(part)
    check_batch_size(batch_size)
    check_on_missed_constraint(on_missed_constraint)
    folder = _protect_records(protector, records, out_dir, identity, source_root, batch_size,
                              device, skip_corrupt, progress, part)
    check_constraint(folder, records, on_missed_constraint)
    return folder


def _protect_records(protector: Protector, records: Sequence[ImageRecord], out_dir: str,
                     identity: ProtectionIdentity, source_root: str, batch_size: int | str, device,
                     skip_corrupt: bool, progress: bool, part: str) -> ProtectedFolder:
    """:func:`protect_records` up to the constraint check."""
    source_root = check_root(os.path.abspath(os.fspath(source_root)), "source_root")
    check_records(records, out_dir, source_root, part)
    os.makedirs(out_dir, exist_ok=True)
    with contextlib.ExitStack() as held:
        with folder_lock(out_dir):
            # the part lock is taken under the folder lock, where every check of other writers'
            # liveness runs, so no check sees it half-taken; it is held until the run ends
            held.enter_context(part_lock(out_dir, part))
            _drop_unfinished_line(os.path.join(out_dir, part_name(part)))
            folder = open_for_writing(out_dir, identity, source_root)
            _clean_temp_files(out_dir, part)
            if glob.glob(os.path.join(out_dir, PART_PATTERN)):
                # parts left by interrupted runs go into manifest.json first, so that what this
                # run records is applied after them whatever the parts' names
                folder = _merge(out_dir, part)
        todo = pending(records, folder)
        if not todo and not glob.glob(os.path.join(out_dir, PART_PATTERN)):
            return folder  # all done before: nothing is written
        _log_resume(out_dir, records, todo, folder)
        wrote = _run_batches(protector, todo, folder, identity, batch_size, device,
                             skip_corrupt, progress, part)
        if not wrote and not glob.glob(os.path.join(out_dir, PART_PATTERN)):
            return folder  # retried inputs failed as before: nothing new to record
        return merge_parts(folder, part)


def check_on_missed_constraint(value: str, name: str = "on_missed_constraint") -> str:
    """``value`` if it is one of :data:`ON_MISSED_CONSTRAINT`.

    Raises:
        ValueError: naming ``name`` (the argument or config key) and the valid values.
    """
    if value not in ON_MISSED_CONSTRAINT:
        raise ValueError(f"{name} must be one of {ON_MISSED_CONSTRAINT}, got {value!r}")
    return value


class ConstraintMissedError(RuntimeError):
    """Stored images miss the protector's feature bound (``on_missed_constraint='fail'``)."""


def check_constraint(folder: ProtectedFolder, records: Sequence[ImageRecord],
                     on_missed: str = "warn") -> list[StoredImage]:
    """The stored images of ``records`` that miss the feature bound, acted on.

    Args:
        folder: the protected folder.
        records: the images to check (those not stored, e.g. skipped inputs, are ignored).
        on_missed: ``'keep'`` (return them), ``'warn'`` (log a warning naming them) or
            ``'fail'``.

    Raises:
        ConstraintMissedError: with ``on_missed='fail'`` if any misses it; the message names
            the folder, the count and the first images with their distances.
    """
    stored = [folder.images[r.output_key] for r in records if r.output_key in folder.images]
    missed = [entry for entry in stored if entry.constraint_met is False]
    if not missed or on_missed == "keep":
        return missed
    first = ", ".join(f"{e.key} (distance {e.distance:.4g})" for e in missed[:5])
    message = (f"{folder.path}: {len(missed)} of {len(stored)} stored images miss the "
               f"feature constraint d(f(x_p), f(x)) <= eps (first: {first}); they are stored "
               f"and marked constraint_met false in the manifest")
    if on_missed == "fail":
        raise ConstraintMissedError(message + "; to accept them, run with "
                                    "pixelfade.on_missed_constraint warn or keep")
    logger.warning(message)
    return missed


def _log_resume(out_dir: str, records: Sequence[ImageRecord], todo: Sequence[ImageRecord],
                folder: ProtectedFolder) -> None:
    if len(todo) < len(records):
        logger.info("%s: %d of %d images already protected, resuming", out_dir,
                    len(records) - len(todo), len(records))
    retried = {item["source"] for item in folder.skipped} & {r.relpath for r in todo}
    if retried:
        logger.info("%s: retrying %d inputs skipped before", out_dir, len(retried))


def _run_batches(protector: Protector, todo: Sequence[ImageRecord], folder: ProtectedFolder,
                 identity: ProtectionIdentity, batch_size: int | str, device, skip_corrupt: bool,
                 progress: bool, part: str) -> bool:
    """Protects ``todo`` batch by batch; whether any batch record was appended.

    A pipeline of three stages, so the protector never waits on the disk: while batch ``i`` is
    protected (this thread), batch ``i + 1`` is read and decoded (a loader thread) and batch
    ``i - 1``'s PNG files and manifest record are written (a writer thread). At most one batch
    waits at each stage, so memory stays at about three batches, and the order of the records,
    what an interruption leaves, and every error (raised where the sequential loop would raise
    it, after the batches before it are recorded) are those of the plain loop.
    """
    fit = _BatchFit(batch_size, device)
    size = fit.size
    batches = [todo[start:start + size] for start in range(0, len(todo), size)]
    part_path = os.path.join(folder.path, part_name(part))
    bar = tqdm(total=len(todo), desc=f"protect ({protector.name})", unit="img",
               disable=not progress)
    wrote, writing = False, None
    with ThreadPoolExecutor(1, "pixelfade-load") as loader, \
            ThreadPoolExecutor(1, "pixelfade-write") as writer:
        def load(batch):
            return loader.submit(load_batch, batch, identity.height, identity.width,
                                 skip_corrupt)

        loading = load(batches[0]) if batches else None
        for index, batch in enumerate(batches):
            kept, tensors, skipped = loading.result()
            if index + 1 < len(batches):
                loading = load(batches[index + 1])
            result, seconds = _protect_batch(protector, kept, tensors, device, fit)
            if writing is not None:
                wrote |= writing.result()
            writing = writer.submit(_store_batch, folder, part_path, kept, result, seconds,
                                    skipped)
            bar.update(len(batch))
        if writing is not None:
            wrote |= writing.result()
    bar.close()
    return wrote
