"""``protect(images, keys=)``: each image's draws seeded by (run seed, its key).

The batch-size checks run the model with oneDNN (mkldnn) off: its convolutions pick kernels by
batch size (on the test machine TinyReID's features at batch 1 differ from batch 8 in the last
bit), whereas the native kernels compute each image alike in any batch, so these tests isolate
what the protectors themselves guarantee.
"""
import pytest
import torch

from torchreid_pixelfade.protect import PixelFade, build_protector, list_protectors
from torchreid_pixelfade.protect.functional import key_seed
from torchreid_pixelfade.protect.masks import random_mask_ids

KEYS = [f"gallery/{i:04d}.png" for i in range(8)]
DRAWING = {"pixelfade": {"steps": 8, "eps": 5e-4}, "avih": {"steps": 8}, "noise": {}}


def in_batches(protector, images, order, size):
    """The protected images, protected ``size`` at a time in ``order``, back in input order."""
    out = torch.empty_like(images)
    for start in range(0, len(order), size):
        index = order[start:start + size]
        out[index] = protector.protect(images[index], keys=[KEYS[i] for i in index]).images
    return out


@pytest.mark.parametrize("quantize", [True, False])
@pytest.mark.parametrize("name", sorted(DRAWING))
def test_a_seeded_keyed_result_does_not_depend_on_the_batch(name, quantize, random_model,
                                                            images, native_kernels):
    protector = build_protector(name, random_model, seed=3, quantize=quantize, **DRAWING[name])
    order = list(range(len(images)))
    whole = in_batches(protector, images, order, 8)
    assert torch.equal(in_batches(protector, images, order, 1), whole)
    assert torch.equal(in_batches(protector, images, order, 3), whole)
    shuffled = torch.randperm(8, generator=torch.Generator().manual_seed(1)).tolist()
    assert torch.equal(in_batches(protector, images, shuffled, 8), whole)
    again = build_protector(name, random_model, seed=3, quantize=quantize, **DRAWING[name])
    assert torch.equal(in_batches(again, images, order, 8), whole)  # another process, same


def test_the_batch_mean_would_make_results_depend_on_the_batch_size(random_model, images,
                                                                    native_kernels):
    # why constraint_scope='image' differentiates the sum: with 1/3 the rounding differs
    protector = PixelFade(random_model, steps=30, eps=5e-4, seed=3)
    order = list(range(len(images)))
    assert torch.equal(in_batches(protector, images, order, 3),
                       in_batches(protector, images, order, 8))
    protector._batch_reduction = lambda: torch.mean
    assert not torch.equal(in_batches(protector, images, order, 3),
                           in_batches(protector, images, order, 8))


def test_keyed_draws_are_each_images_own_generator(random_model, images):
    # noise (3, H, W), then the masks, from a generator seeded by key_seed(seed, key)
    x, keys = images[:3], KEYS[:3]
    noise, mask_ids = [], []
    for key in keys:
        generator = torch.Generator().manual_seed(key_seed(3, key))
        noise.append(torch.randn(x.shape[1:], generator=generator))
        mask_ids.append(random_mask_ids((1, *x.shape[1:]), 5, "element", [generator]))
    mask_ids = torch.cat(mask_ids)
    masks = torch.stack([mask_ids == j for j in range(5)])
    protector = PixelFade(random_model, steps=8, seed=3)
    assert torch.equal(protector.protect(x, keys=keys).images,
                       protector.protect(x, noise=torch.stack(noise), masks=masks).images)


def test_key_seed_is_stable():
    # stored folders rely on it: an image resumed by a later version gets the same draws
    assert key_seed(0, "query/0001_c1s1_000001_00.png") == 1709431652823096356
    assert key_seed(7, "a") == 4714401388953943096
    assert key_seed(7, "a") != key_seed(8, "a") != key_seed(7, "b")
    assert 0 <= key_seed(2 ** 63 - 1, "") < 2 ** 63


@pytest.mark.parametrize("name", sorted(DRAWING))
def test_keys_without_a_seed_stay_unpredictable(name, random_model, images):
    x, keys = images[:2], KEYS[:2]
    first = build_protector(name, random_model, **DRAWING[name])
    second = build_protector(name, random_model, **DRAWING[name])
    assert not torch.equal(first.protect(x, keys=keys).images,
                           second.protect(x, keys=keys).images)


@pytest.mark.parametrize("name", sorted(DRAWING))
def test_keys_and_seeds_select_the_draws(name, random_model, images):
    x = images[:1].expand(2, -1, -1, -1)  # one image under two keys
    protector = build_protector(name, random_model, seed=3, **DRAWING[name])
    out = protector.protect(x, keys=["a", "b"]).images
    assert not torch.equal(out[0], out[1])
    other = build_protector(name, random_model, seed=4, **DRAWING[name])
    assert not torch.equal(other.protect(x, keys=["a", "b"]).images, out)


def test_without_keys_the_generator_still_advances(random_model, images):
    protector = PixelFade(random_model, steps=4, seed=0)
    first, second = protector(images[:2]), protector(images[:2])
    assert not torch.equal(first, second)
    assert torch.equal(PixelFade(random_model, steps=4, seed=0)(images[:2]), first)


@pytest.mark.parametrize("name", list_protectors())
def test_every_protector_takes_keys(name, random_model, images):
    kwargs = {**DRAWING.get(name, {}), **({"seed": 0} if name in DRAWING else {})}
    keyed = build_protector(name, random_model, **kwargs).protect(images[:2], keys=KEYS[:2])
    plain = build_protector(name, random_model, **kwargs).protect(images[:2])
    assert keyed.images.shape == images[:2].shape
    assert torch.equal(keyed.images, plain.images) == (name not in DRAWING)
    empty = build_protector(name, random_model, **kwargs).protect(images[:0], keys=[])
    assert empty.images.shape == (0, 3, 64, 32)


@pytest.mark.parametrize("keys, error, message", [
    ("ab", TypeError, "sequence of strings"), (["a"], ValueError, "one key per image"),
    (["a", 1], TypeError, "strings"), (torch.zeros(2), TypeError, "sequence of strings")])
@pytest.mark.parametrize("name", ["pixelfade", "blur"])
def test_bad_keys_raise(name, keys, error, message, random_model, images):
    protector = build_protector(name, random_model, **DRAWING.get(name, {}))
    with pytest.raises(error, match=message):
        protector.protect(images[:2], keys=keys)


def test_box_sums_are_the_all_ones_convolution_image_by_image():
    from torchreid_pixelfade.protect.avih import box_sums
    x = torch.rand(5, 3, 16, 8, generator=torch.Generator().manual_seed(0))
    conv = torch.nn.functional.conv2d(x.double(), x.new_ones(3, 1, 4, 4).double(), groups=3)
    assert torch.allclose(box_sums(x).double(), conv, atol=1e-5)
    assert torch.equal(torch.cat([box_sums(x[i:i + 1]) for i in range(5)]), box_sums(x))
