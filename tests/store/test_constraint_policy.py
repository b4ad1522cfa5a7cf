"""Stored images that miss the feature bound: recorded, counted, and kept, warned about or
refused as the run asks; the passes spent per image recorded."""
import logging

import pytest

from torchreid_pixelfade.protect import PixelFade
from torchreid_pixelfade.store import ConstraintMissedError, ProtectedFolder, check_constraint
from store_helpers import Counting, run


def missing(model):
    """PixelFade whose bound no image can meet (eps 0, no extra steps)."""
    return PixelFade(model, steps=3, eps=0.0, extra_steps=0, seed=0)


def meeting(model):
    """PixelFade whose bound every image meets."""
    return PixelFade(model, steps=3, eps=1e6, seed=0)


def test_warn_stores_every_image_and_names_the_misses(tiny_records, random_model, tmp_path,
                                                      caplog):
    root, records = tiny_records
    with caplog.at_level(logging.WARNING, logger="torchreid_pixelfade.store.writer"):
        folder = run(missing(random_model), records, tmp_path, root)
    assert len(folder) == len(records)
    assert all(e.constraint_met is False for e in folder.images.values())
    warning, = [r.getMessage() for r in caplog.records]
    assert str(tmp_path) in warning and f"{len(records)} of {len(records)}" in warning
    assert records[0].output_key in warning
    summary = ProtectedFolder.open(str(tmp_path)).summary()
    assert summary["constraint_missed"] == len(records)
    assert summary["constraint_met_fraction"] == 0.0


def test_fail_raises_after_storing_everything_and_again_on_rerun(tiny_records, random_model,
                                                                tmp_path):
    root, records = tiny_records
    with pytest.raises(ConstraintMissedError, match=f"{len(records)} of {len(records)} stored"):
        run(missing(random_model), records, tmp_path, root, on_missed_constraint="fail")
    folder = ProtectedFolder.open(str(tmp_path))
    assert len(folder) == len(records)  # nothing lost: every image is stored and recorded
    assert all((tmp_path / r.output_key).exists() for r in records)
    protector = missing(random_model)
    calls = []
    protector.protect = lambda *a, **k: calls.append(a)
    with pytest.raises(ConstraintMissedError):
        run(protector, records, tmp_path, root, on_missed_constraint="fail")
    assert calls == []  # the rerun protected nothing, it checked what is stored
    assert len(check_constraint(folder, records, "keep")) == len(records)


def test_keep_is_silent_and_met_images_pass_fail(tiny_records, random_model, tmp_path, caplog):
    root, records = tiny_records
    with caplog.at_level(logging.WARNING):
        run(missing(random_model), records, tmp_path / "kept", root, on_missed_constraint="keep")
    assert not caplog.records
    folder = run(meeting(random_model), records, tmp_path / "met", root,
                 on_missed_constraint="fail")
    assert folder.summary()["constraint_missed"] == 0


def test_only_the_given_records_are_checked(tiny_records, random_model, tmp_path):
    root, records = tiny_records
    folder = run(missing(random_model), records, tmp_path, root, on_missed_constraint="keep")
    with pytest.raises(ConstraintMissedError, match="2 of 2 stored"):
        check_constraint(folder, records[:2], "fail")
    assert check_constraint(folder, [], "fail") == []


def test_an_unknown_policy_is_refused_before_anything_is_written(tiny_records, tmp_path):
    root, records = tiny_records
    with pytest.raises(ValueError, match="on_missed_constraint must be one of"):
        run(Counting(), records, tmp_path / "o", root, on_missed_constraint="ignore")
    assert not (tmp_path / "o").exists()


def test_steps_spent_per_image_are_recorded(tiny_records, random_model, tmp_path):
    root, records = tiny_records
    protector = PixelFade(random_model, steps=4, eps=0.0, extra_steps=2, retries=1, seed=0)
    folder = run(protector, records, tmp_path / "pf", root, on_missed_constraint="keep")
    steps = [e.steps for e in ProtectedFolder.open(str(tmp_path / "pf")).images.values()]
    # eps 0 is never met: T + extra_steps each, twice (the retry)
    assert steps == [12] * len(records)
    assert folder.summary()["steps_used_mean"] == 12 and folder.summary()["steps_used_max"] == 12
    plain = run(Counting(), records, tmp_path / "identity", root)
    assert all(e.steps is None for e in plain.images.values())
    assert plain.summary()["steps_used_mean"] is None
    assert plain.summary()["constraint_missed"] is None
