import json
import os
import shutil
import stat
import struct
import zlib

import numpy as np

import pytest
import torch
from PIL import Image

from torchreid_pixelfade.io import (ImageReadError, atomic_torch_save, atomic_write_json, quantize,
                                    read_image, write_png)


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


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_mode_of_a_normally_written_file(tmp_path, umask_022):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    write_png(tmp_path / "a.png", torch.zeros(3, 4, 4))
    atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "w.pth")
    for name in ("m.json", "a.png", "w.pth"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    os.umask(0o077)
    atomic_write_json(tmp_path / "private.json", {})
    assert stat.S_IMODE(os.stat(tmp_path / "private.json").st_mode) == 0o600


def test_a_failed_write_leaves_no_temp_file(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "m.json", {"a": object()})
    assert list(tmp_path.iterdir()) == []


def gray16(path, values):
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def test_16bit_grayscale_is_scaled_to_8bit(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 128 * 257, 1000]], dtype=np.uint16)
    gray16(tmp_path / "g16.png", values)
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")
    image = np.asarray(read_image(tmp_path / "g16.png"))
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    expected = np.round(values / 257).astype(np.uint8)
    assert (image == expected[..., None]).all()


def test_32bit_integer_images_beyond_16_bits_are_refused(tmp_path):
    Image.fromarray(np.array([[0, 1 << 20]], dtype=np.int32), mode="I").save(tmp_path / "i.tif")
    with pytest.raises(ImageReadError, match=r"i.tif: .*16-bit"):
        read_image(tmp_path / "i.tif")


def bomb_png(path, width, height):
    """A PNG header claiming ``width x height`` pixels (a decompression bomb), tiny data."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with open(path, "wb") as handle:
        handle.write(data)


def test_decompression_bombs_are_read_errors_naming_the_file(tmp_path, monkeypatch):
    bomb_png(tmp_path / "bomb.png", 40000, 40000)
    with pytest.raises(ImageReadError, match=r"bomb.png: .*pixels"):
        read_image(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # over the limit, under twice it
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match=r"big.png: .*pixels"):
        read_image(tmp_path / "big.png")


def test_any_decoder_failure_is_a_read_error_naming_the_file(tmp_path, monkeypatch):
    good = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(good)

    def broken(self):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(Image.Image, "load", broken)
    with pytest.raises(ImageReadError, match=r"x.png: not a readable image \(.*unpack"):
        read_image(good)


def test_a_bomb_is_skipped_with_skip_corrupt(tiny_records, tmp_path):
    from torchreid_pixelfade.protect import Identity
    from torchreid_pixelfade.store import ImageRecord, ProtectionIdentity, protect_records
    records = tiny_records[1]
    bomb_png(tmp_path / "bomb.png", 40000, 40000)
    bomb = ImageRecord(str(tmp_path / "bomb.png"), "bomb.png", 1, 0, "query")
    copies = [ImageRecord(os.path.join(str(tmp_path), "a.jpg"), "a.jpg", 1, 0, "query")]
    shutil.copy(records[0].path, copies[0].path)
    identity = ProtectionIdentity(protector="identity", hparams={}, model="m",
                                  weights_sha256="", height=64, width=32)
    folder = protect_records(Identity(), copies + [bomb], str(tmp_path / "out"), identity,
                             str(tmp_path), progress=False, skip_corrupt=True)
    assert len(folder) == 1 and folder.skipped[0]["source"] == "bomb.png"
    assert "bomb.png" in folder.skipped[0]["error"]
