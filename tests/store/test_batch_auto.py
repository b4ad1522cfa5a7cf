"""``batch_size='auto'``: the largest call that fits, found by halving on out-of-memory."""
import dataclasses
import json
import logging

import pytest
import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.protect import PixelFade, ProtectionResult
from torchreid_pixelfade.protect.pixelfade import PixelFadeResult
from torchreid_pixelfade.store import check_batch_size, protect_records, protection_identity
from torchreid_pixelfade.store import writer as writer_module
from test_split_independence import pngs


class Small(PixelFade):
    """PixelFade on a device that holds at most ``fits`` images per call: larger calls raise
    the out-of-memory error a GPU would."""

    def __init__(self, model, fits, **params):
        super().__init__(model, **params)
        self.fits, self.calls = fits, []

    def protect(self, images, *args, **kwargs):
        self.calls.append(len(images))
        if len(images) > self.fits:
            raise writer_module.OUT_OF_MEMORY("CUDA out of memory (simulated)")
        return super().protect(images, *args, **kwargs)


def protect(protector, model, records, root, out, batch_size):
    identity = protection_identity(protector, model, model.model, 64, 32, "tiny")
    folder = protect_records(protector, records, str(out), identity, root,
                             batch_size=batch_size, progress=False)
    return folder, pngs(out)


def test_auto_halves_until_a_call_fits_and_keeps_that_size(tiny_records, random_model, tmp_path,
                                                          native_kernels, caplog):
    root, records = tiny_records
    records = records[:20]
    small = Small(random_model, fits=5, steps=3, eps=5e-4, seed=2)
    with caplog.at_level(logging.INFO, logger="torchreid_pixelfade.store.writer"):
        folder, auto = protect(small, random_model, records, root, tmp_path / "auto", "auto")
    # the first call tries all 20 (at most 32, the size off CUDA), then half of what was
    # tried: 10, then 5, which fits; the rest go in calls of 5
    assert small.calls == [20, 10, 5, 5, 5, 5]
    assert "20 images do not fit on cpu; trying 10" in caplog.text
    assert "batch size auto: 5 images per protector call" in caplog.text
    assert len(folder) == 20
    # seeded keyed draws: the same PNGs as a run with calls of 5 from the start
    _, fixed = protect(PixelFade(random_model, steps=3, eps=5e-4, seed=2), random_model,
                       records, root, tmp_path / "fixed", 5)
    assert auto == fixed
    entries = [json.loads((tmp_path / name / "manifest.json").read_text())["images"]
               for name in ("auto", "fixed")]
    for field in ("steps", "distance", "constraint_met"):  # per-image results, joined right
        assert [e[field] for e in entries[0].values()] == [e[field] for e in entries[1].values()]


def test_a_fixed_batch_size_does_not_hide_out_of_memory(tiny_records, random_model, tmp_path):
    root, records = tiny_records
    with pytest.raises(writer_module.OUT_OF_MEMORY):
        protect(Small(random_model, fits=2, steps=1, seed=0), random_model, records[:4], root,
                tmp_path / "p", 4)


def test_auto_gives_up_when_one_image_does_not_fit(tiny_records, random_model, tmp_path):
    root, records = tiny_records
    small = Small(random_model, fits=0, steps=1, seed=0)
    with pytest.raises(writer_module.OUT_OF_MEMORY):
        protect(small, random_model, records[:3], root, tmp_path / "p", "auto")
    assert small.calls[-1] == 1


def test_split_results_are_joined_field_by_field():
    parts = [PixelFadeResult(images=torch.zeros(n, 3, 2, 2), distance=torch.ones(n),
                             steps=torch.full((n,), n)) for n in (2, 1)]
    joined = writer_module._concatenated(parts)
    assert isinstance(joined, PixelFadeResult)
    assert joined.images.shape[0] == 3 and joined.steps.tolist() == [2, 2, 1]
    assert joined.constraint_met is None and joined.replaced_fraction is None


@dataclasses.dataclass
class WithSettings(ProtectionResult):
    """A result type of some protector, with a per-run setting and a scalar tensor."""

    scale: float = 1.0
    temperature: torch.Tensor | None = None


def test_fields_that_are_not_per_image_are_kept_once_or_refused():
    def part(n, scale=0.5):
        return WithSettings(images=torch.zeros(n, 3, 2, 2), scale=scale,
                            temperature=torch.tensor(2.0))

    joined = writer_module._concatenated([part(1), part(1)])
    assert joined.scale == 0.5 and joined.temperature == 2.0 and len(joined.images) == 2
    with pytest.raises(ValueError, match="'scale' is neither per image nor equal"):
        writer_module._concatenated([part(1), part(1, scale=0.7)])


def test_runtime_errors_count_as_out_of_memory_only_when_they_say_so():
    assert writer_module.is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert writer_module.is_out_of_memory(writer_module.OUT_OF_MEMORY("x"))
    assert not writer_module.is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.parametrize("value", [0, -1, "big", True, 2.0])
def test_bad_batch_sizes_are_named(value):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or 'auto'"):
        check_batch_size(value)


def test_the_config_takes_auto_then_a_number(tmp_path):
    cfg = C.get_default_config()
    C.merge_opts(cfg, ["pixelfade.batch_size", "auto"])
    assert cfg.pixelfade.batch_size == "auto"
    C.check_run_options(cfg)
    C.merge_opts(cfg, ["pixelfade.batch_size", "8"])
    assert cfg.pixelfade.batch_size == 8
    path = tmp_path / "c.yaml"
    path.write_text("pixelfade:\n  batch_size: auto\n")
    C.merge_file(cfg, str(path))
    assert cfg.pixelfade.batch_size == "auto"
    with pytest.raises(ValueError, match="pixelfade.batch_size"):
        C.merge_opts(cfg, ["pixelfade.batch_size", "big"])


def test_auto_starts_large_on_cuda_only():
    assert writer_module._BatchFit("auto", "cuda:1").size == writer_module.AUTO_BATCH_CUDA
    assert writer_module._BatchFit("auto", "cpu").size == writer_module.AUTO_BATCH_OTHER
    assert writer_module._BatchFit(7, "cuda").size == 7


def test_a_file_with_an_error_leaves_the_config_as_it_was(tmp_path):
    cfg = C.get_default_config()
    path = tmp_path / "c.yaml"
    path.write_text("pixelfade:\n  batch_size: auto\n  no_such_key: 1\n")
    with pytest.raises(KeyError, match="no_such_key"):
        C.merge_file(cfg, str(path))
    assert cfg.pixelfade.batch_size == 32
