import pytest
import torch

from torchreid_pixelfade.protect.masks import (mask_ids_from_masks, random_mask_ids,
                                              replace_values)


@pytest.mark.parametrize("unit", ["element", "pixel"])
@pytest.mark.parametrize("num_masks", [1, 3, 5])
def test_masks_are_disjoint_covering_and_balanced(unit, num_masks):
    ids = random_mask_ids((3, 3, 16, 8), num_masks, unit, torch.Generator().manual_seed(0))
    masks = torch.stack([ids == k for k in range(num_masks)])
    # every value is in exactly one mask: disjoint and covering
    assert torch.equal(masks.sum(0), torch.ones_like(ids))
    counts = masks.flatten(2).sum(-1).float()  # (I, B)
    per_image = 3 * 16 * 8
    assert (counts - per_image / num_masks).abs().max() <= 3  # exactly balanced up to rounding


def test_pixel_masks_share_channels():
    ids = random_mask_ids((2, 3, 8, 4), 5, "pixel", torch.Generator().manual_seed(1))
    assert torch.equal(ids[:, 0], ids[:, 1]) and torch.equal(ids[:, 1], ids[:, 2])


def test_element_masks_differ_between_images_and_channels():
    ids = random_mask_ids((2, 3, 16, 8), 5, "element", torch.Generator().manual_seed(2))
    assert not torch.equal(ids[0], ids[1])
    assert not torch.equal(ids[0, 0], ids[0, 1])


def test_masks_do_not_depend_on_batch_size():
    for batch in (1, 7, 20):
        ids = random_mask_ids((batch, 3, 8, 4), 5, generator=torch.Generator().manual_seed(0))
        assert ids.shape == (batch, 3, 8, 4)


def test_unknown_unit_raises():
    with pytest.raises(ValueError, match="mask unit"):
        random_mask_ids((1, 3, 4, 4), 5, "row")


def test_replace_values_writes_only_active_images_in_their_mask():
    ids = random_mask_ids((2, 3, 8, 4), 4, generator=torch.Generator().manual_seed(0))
    images, noise = torch.zeros(2, 3, 8, 4), torch.ones(2, 3, 8, 4)
    out, replaced = replace_values(images, noise, ids, torch.tensor([2, 3]),
                                   torch.tensor([True, False]))
    assert torch.equal(out[0] == 1, ids[0] == 2)
    assert not out[1].any() and not replaced[1].any()


def test_full_cycle_replaces_every_value():
    ids = random_mask_ids((2, 3, 8, 4), 5, generator=torch.Generator().manual_seed(0))
    images, noise = torch.zeros(2, 3, 8, 4), torch.rand(2, 3, 8, 4) + 1
    ever = torch.zeros_like(images, dtype=torch.bool)
    for k in range(5):
        images, replaced = replace_values(images, noise, ids, torch.full((2,), k),
                                          torch.ones(2, dtype=torch.bool))
        ever |= replaced
    assert ever.all() and torch.equal(images, noise)


def test_mask_ids_from_masks_round_trip_and_uncovered_values():
    ids = random_mask_ids((2, 3, 8, 4), 5, generator=torch.Generator().manual_seed(0))
    masks = torch.stack([ids == k for k in range(5)])
    assert torch.equal(mask_ids_from_masks(masks, ids.shape, 5), ids)
    masks[3] = False
    expected = torch.where(ids == 3, -1, ids)
    assert torch.equal(mask_ids_from_masks(masks, ids.shape, 5), expected)
    images, noise = torch.zeros(2, 3, 8, 4), torch.ones(2, 3, 8, 4)
    out, _ = replace_values(images, noise, expected, torch.full((2,), 3), torch.ones(2).bool())
    assert not out.any()  # mask 3 is empty now
