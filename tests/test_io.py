import json

import numpy as np

import pytest
import torch
from PIL import Image

from torchreid_pixelfade.io import (ImageReadError, atomic_write_json, quantize, read_image,
                                    write_png)


def test_png_is_lossless_on_the_8bit_grid(tmp_path):
    image = quantize(torch.rand(3, 16, 8))
    write_png(tmp_path / "a.png", image)
    back = torch.from_numpy(np.array(Image.open(tmp_path / "a.png"))).permute(2, 0, 1) / 255
    assert torch.equal(back, image)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_corrupt_image_error_names_the_file(tmp_path):
    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match="0001_c1s1_000001_00.jpg: not a readable image"):
        read_image(bad)


def test_truncated_image_error_names_the_file(tmp_path):
    good = tmp_path / "x.jpg"
    Image.new("RGB", (32, 64), "red").save(good, quality=95)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="x.jpg"):
        read_image(good)


def test_missing_image(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "none.jpg")
