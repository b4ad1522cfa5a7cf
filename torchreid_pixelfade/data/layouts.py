"""Checks of a dataset's files before torchreid reads them, so a bad file is named.

torchreid's readers fail on a file outside the dataset's naming pattern with an
``AttributeError`` on ``None``, on an id out of range with a bare ``assert``, and on an empty
split folder with an ``IndexError``; none names the file or folder. The checks here follow
torchreid's own rules for the layouts they know and raise a ``ValueError`` that does.
"""
from __future__ import annotations

import glob
import os
import re

#: Market-1501 (torchreid's ``Market1501``): file names ``<pid>_c<cam>...jpg``.
MARKET1501_PATTERN = re.compile(r"([-\d]+)_c(\d)")
MARKET1501_SPLITS = ("bounding_box_train", "query", "bounding_box_test")
MARKET1501_FOLDERS = ("Market-1501-v15.09.15", "")


def market1501_folder(root: str) -> str | None:
    """The folder holding Market-1501's split folders under a torchreid data root, or None."""
    for sub in MARKET1501_FOLDERS:
        folder = os.path.join(root, "market1501", sub)
        if os.path.isdir(os.path.join(folder, MARKET1501_SPLITS[0])):
            return folder
    return None


def check_market1501_name(path: str) -> None:
    """Checks one image name against torchreid's Market-1501 rules.

    Raises:
        ValueError: naming the file, for a name outside the pattern, an identity outside
            -1..1501 or a camera outside 1..6.
    """
    match = MARKET1501_PATTERN.search(os.path.basename(path))
    if match is None:
        raise ValueError(f"{path}: not a Market-1501 file name (expected <id>_c<camera>..., "
                         f"e.g. 0002_c1s1_000451_03.jpg)")
    pid, camid = map(int, match.groups())
    if pid != -1 and not 0 <= pid <= 1501:
        raise ValueError(f"{path}: identity {pid} is outside Market-1501's 0..1501 (-1: junk)")
    if not 1 <= camid <= 6:
        raise ValueError(f"{path}: camera {camid} is outside Market-1501's 1..6")


def check_market1501(root: str) -> None:
    """Checks every split folder of a Market-1501 tree under ``root`` (if there is one).

    Raises:
        ValueError: naming an empty split folder or the first badly named image.
    """
    folder = market1501_folder(root)
    if folder is None:
        return
    for split in MARKET1501_SPLITS:
        paths = sorted(glob.glob(os.path.join(folder, split, "*.jpg")))
        if not paths:
            raise ValueError(f"{os.path.join(folder, split)}: no .jpg images; torchreid's "
                             f"Market-1501 reader needs all of {list(MARKET1501_SPLITS)}")
        for path in paths:
            check_market1501_name(path)


#: Checks per torchreid dataset name.
CHECKS = {"market1501": check_market1501}


def check_dataset(name: str, root: str) -> None:
    """Runs the checks known for dataset ``name`` under the data root ``root`` (none: no-op)."""
    if name in CHECKS:
        CHECKS[name](root)
