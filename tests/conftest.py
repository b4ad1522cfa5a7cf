"""Shared fixtures: tiny Re-ID models with random or briefly trained weights, 64x32 images."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from torchreid_pixelfade.models import AuthorizedModel

# One thread: the tests use tiny models, and on a shared 2-core machine two torch threads per
# process contend with other processes (measured: an attack test took 49 s with 2 threads under
# load, 2.5 s with 1). Every property asserted here holds for any thread count.
torch.set_num_threads(1)

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                           "cuhk03-detected")


class TinyReID(nn.Module):
    """A two-block CNN returning a 32-d feature in eval mode and logits in train mode."""

    def __init__(self, num_classes: int = 8, dim: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.features(x)
        return self.classifier(v) if self.training else v


def train_tiny(images: torch.Tensor, labels: torch.Tensor, steps: int = 60) -> TinyReID:
    torch.manual_seed(0)
    net = TinyReID(num_classes=int(labels.max()) + 1)
    inputs = AuthorizedModel(nn.Identity()).normalize(images)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    net.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    return net


@pytest.fixture(scope="session")
def images() -> torch.Tensor:
    """Eight 64x32 synthetic pedestrians in [0, 1] (two per identity)."""
    from torchreid_pixelfade.data.synthetic import make_synthetic_images
    return make_synthetic_images(8, 64, 32, seed=0)


@pytest.fixture(scope="session")
def trained_model(images: torch.Tensor) -> AuthorizedModel:
    """A TinyReID trained for a few steps to tell the eight images apart."""
    net = train_tiny(images, torch.arange(len(images)))
    return AuthorizedModel(net, name="tiny")


@pytest.fixture
def random_model() -> AuthorizedModel:
    torch.manual_seed(0)
    return AuthorizedModel(TinyReID(), name="tiny-random")


@pytest.fixture(scope="session")
def shared_data() -> str:
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"shared CUHK03 data not found at {SHARED_DATA}")
    return os.path.abspath(SHARED_DATA)


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory) -> str:
    """A tiny synthetic Market-1501 tree (6 test ids x 2 cameras x 2 images, 64x32); its root."""
    from torchreid_pixelfade.data.synthetic import SyntheticConfig, make_synthetic_market1501
    root = tmp_path_factory.mktemp("market")
    make_synthetic_market1501(root, SyntheticConfig(num_train_ids=3, num_test_ids=6,
                                                    images_per_id_per_camera=2, height=64,
                                                    width=32))
    return str(root)


@pytest.fixture(scope="session")
def tiny_records(tiny_market):
    """``(source_root, records)`` of the tiny Market tree's query and gallery."""
    from torchreid_pixelfade._torchreid import tr
    from torchreid_pixelfade.store import records_from_dataset
    dataset = tr.data.datasets.init_image_dataset("market1501", root=tiny_market, mode="query",
                                                  verbose=False)
    return records_from_dataset(dataset, ("query", "gallery"))


@pytest.fixture
def native_kernels():
    """oneDNN (mkldnn) off for the test: its CPU kernels differ in the last bit between batch
    sizes, PyTorch's native ones do not for the tiny model."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled
