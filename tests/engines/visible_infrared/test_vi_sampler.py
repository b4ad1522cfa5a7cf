"""The paired identity sampler: balanced batches, shared ids, determinism, record readers."""
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from torchreid_pixelfade.engines.visible_infrared.sampler import (
    PairedIdentitySampler,
    modality_code,
)

P, K = 3, 2


def make_labels():
    """Six ids with 1-5 images per modality; id 9 has visible images only."""
    pids, modalities = [], []
    for pid in range(6):
        for modality, count in (("visible", 1 + pid % 4), ("infrared", 1 + (pid * 3) % 5)):
            pids += [pid] * count
            modalities += [modality] * count
    pids += [9, 9]
    modalities += ["visible", "visible"]
    return pids, modalities


@pytest.fixture
def labels():
    return make_labels()


def test_every_batch_is_balanced_and_paired(labels):
    pids, modalities = labels
    sampler = PairedIdentitySampler(pids, modalities, num_ids=P, num_pos=K, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == max(Counter(modalities).values()) // (P * K) + 1
    for batch in batches:
        assert len(batch) == sampler.batch_size == 2 * P * K
        visible, thermal = batch[:P * K], batch[P * K:]
        assert all(modality_code(modalities[i]) == 1 for i in visible)
        assert all(modality_code(modalities[i]) == 2 for i in thermal)
        assert [pids[i] for i in visible] == [pids[i] for i in thermal]  # same ids, same order
        counts = Counter(pids[i] for i in visible)
        assert len(counts) == P and set(counts.values()) == {K}
        assert 9 not in counts  # never drawn without thermal images


def test_deterministic_per_seed_and_epoch(labels):
    def passes(seed, n=3):
        sampler = PairedIdentitySampler(*labels, num_ids=P, num_pos=K, seed=seed)
        return [list(sampler) for _ in range(n)]

    first = passes(0)
    assert first == passes(0)
    assert first[0] != first[1]  # each pass is a new epoch
    assert first != passes(1)
    sampler = PairedIdentitySampler(*labels, num_ids=P, num_pos=K, seed=0)
    sampler.set_epoch(2)
    assert list(sampler) == first[2]


def test_over_many_batches_all_paired_ids_are_drawn(labels):
    sampler = PairedIdentitySampler(*labels, num_ids=P, num_pos=K, num_batches=50)
    drawn = {labels[0][i] for batch in sampler for i in batch}
    assert drawn == set(range(6))


def test_from_records_and_dataloader(labels):
    pids, modalities = labels
    records = [SimpleNamespace(pid=p, modality=m) for p, m in zip(pids, modalities)]
    dicts = [{"pid": p, "modality": m} for p, m in zip(pids, modalities)]
    # torchreid items (path, pid, camid), the modality read from SYSU-like cameras
    tuples = [(f"{i}.jpg", p, 3 if m == "infrared" else 1)
              for i, (p, m) in enumerate(zip(pids, modalities))]

    def thermal_cams(record):
        return "ir" if record[2] == 3 else "rgb"

    expected = list(PairedIdentitySampler(pids, modalities, P, K, seed=5))
    assert list(PairedIdentitySampler.from_records(records, num_ids=P, num_pos=K, seed=5)) \
        == expected
    assert list(PairedIdentitySampler.from_records(dicts, num_ids=P, num_pos=K, seed=5)) \
        == expected
    assert list(PairedIdentitySampler.from_records(tuples, modality_of=thermal_cams,
                                                   num_ids=P, num_pos=K, seed=5)) == expected
    with pytest.raises(ValueError, match="modality_of="):
        PairedIdentitySampler.from_records(tuples)

    class Items(Dataset):
        def __len__(self):
            return len(pids)

        def __getitem__(self, index):
            return torch.tensor(pids[index])

    sampler = PairedIdentitySampler(pids, modalities, P, K, seed=5)
    for labels_batch in DataLoader(Items(), batch_sampler=sampler):
        assert torch.equal(labels_batch[:P * K], labels_batch[P * K:])


def test_errors(labels):
    pids, modalities = labels
    with pytest.raises(ValueError, match="a batch needs num_ids=7"):
        PairedIdentitySampler(pids, modalities, num_ids=7)
    with pytest.raises(ValueError, match="Unknown modality"):
        PairedIdentitySampler([0], ["depth"], num_ids=1)
    with pytest.raises(ValueError, match="modalities"):
        PairedIdentitySampler(pids, modalities[:-1])
    with pytest.raises(ValueError, match=">= 1"):
        PairedIdentitySampler(pids, modalities, num_pos=0)
    assert modality_code(2) == modality_code("IR") == modality_code("thermal") == 2
