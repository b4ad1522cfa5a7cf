"""Training the two-stream VI net with the torchreid Engine subclass on a tiny synthetic SYSU."""
from __future__ import annotations

import math
import os

import pytest
import torch

from torchreid_pixelfade.data.synthetic.sysu_regdb import (
    SyntheticSysuConfig,
    make_synthetic_sysu_mm01,
)
from torchreid_pixelfade.engines.visible_infrared.datasets import read_sysu_mm01
from torchreid_pixelfade.engines.visible_infrared.engine import (
    VIEngine,
    agw_scheduler,
    build_vi_datamanager,
    build_vi_engine,
    split_paired_batch,
)
from torchreid_pixelfade.engines.visible_infrared.model import THERMAL, VISIBLE, build_vi_model

HEIGHT, WIDTH = 64, 32
SYSU = SyntheticSysuConfig(num_train_ids=4, num_val_ids=1, num_test_ids=6,
                           images_per_id_per_camera=2, missing_camera_prob=0.2, height=HEIGHT,
                           width=WIDTH, seed=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("vi_engine")
    make_synthetic_sysu_mm01(root, SYSU)
    return read_sysu_mm01(root)


def datamanager(data):
    return build_vi_datamanager(data.train, data.test, HEIGHT, WIDTH, num_ids=4, num_pos=2,
                                num_batches=3, pad=2, seed=0)


def test_batches_are_paired(data):
    batch = next(iter(datamanager(data).train_loader))
    assert batch["img"].shape == (16, 3, HEIGHT, WIDTH)
    assert batch["modal"][:8].eq(VISIBLE).all() and batch["modal"][8:].eq(THERMAL).all()
    visible, thermal = split_paired_batch(batch["img"], batch["pid"], batch["modal"])
    assert len(visible) == len(thermal) == 8
    with pytest.raises(ValueError, match="PairedIdentitySampler"):
        split_paired_batch(batch["img"], batch["pid"], batch["modal"].flip(0))


def test_two_epochs_train_evaluate_and_save(data, tmp_path):
    torch.manual_seed(0)
    manager = datamanager(data)
    net = build_vi_model("osnet_x0_25", manager.num_train_pids)
    engine = build_vi_engine(manager, net, lr=0.05, warmup=1, trials=(0, 1),
                             label_smoothing=0.1)
    assert isinstance(engine, VIEngine)
    engine.run(save_dir=str(tmp_path), max_epoch=2)
    assert len(engine.epoch_losses) == 2 and all(map(math.isfinite, engine.epoch_losses))
    assert engine.epoch_losses[-1] < engine.epoch_losses[0] * 1.5
    assert list(engine.last_results) == ["O2O:rgb_to_ir", "O2O:ir_to_rgb"]
    assert 0.0 <= engine.best_rank1 <= 1.0
    assert not net.bottleneck.bias.requires_grad and not net.bottleneck.bias.any()
    path = tmp_path / "model.pth"
    assert path.is_file()
    state = torch.load(path, weights_only=True)
    fresh = build_vi_model("osnet_x0_25", manager.num_train_pids)
    fresh.load_state_dict(state)  # strict: one plain state dict of the whole net
    assert all(torch.equal(state[k], v.cpu()) for k, v in net.state_dict().items())
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".pth.tar")]


def test_agw_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = agw_scheduler(optimizer, warmup=2, milestones=(3, 5))
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.1, 0.1, 0.01])
