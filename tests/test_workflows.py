"""Library workflows from a config: refusals with clear errors (fast; tiny data, random weights)."""
import json
import os

import pytest
import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.models import build_reid_model
from torchreid_pixelfade.workflows import (check_dataset_folders, dataset_records,
                                           evaluate_folder, protect_dataset)

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "osnet_x0_25_128x64.yaml")


def tiny_config(root, *opts):
    cfg = C.get_default_config()
    C.merge_file(cfg, CONFIG)
    C.merge_opts(cfg, ["data.root", root, "data.height", "64", "data.width", "32",
                       "pixelfade.protector", "identity", *opts])
    cfg.freeze()
    return cfg


@pytest.fixture(scope="module")
def two_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(str(folder / f"w{seed}.pth"))
        torch.save(build_reid_model("osnet_x0_25").state_dict(), paths[-1])
    return paths


def test_evaluating_with_other_weights_is_refused_unless_asked(tiny_market, two_weights,
                                                               tmp_path):
    cfg = tiny_config(tiny_market)
    first, second = two_weights
    protect_dataset(cfg, first, str(tmp_path / "p"), progress=False)
    with pytest.raises(ValueError, match="other weights"):
        evaluate_folder(cfg, second, str(tmp_path / "p"))
    other_model = tiny_config(tiny_market, "model.name", "osnet_x0_5")
    with pytest.raises(ValueError, match="protected with model 'osnet_x0_25'"):
        evaluate_folder(other_model, second, str(tmp_path / "p"))
    result = evaluate_folder(cfg, second, str(tmp_path / "p"), str(tmp_path / "r.json"),
                             allow_other_weights=True)
    saved = json.loads((tmp_path / "r.json").read_text())
    from torchreid_pixelfade.store import file_sha256
    assert saved["weights_sha256"] == file_sha256(second) == result.weights_sha256
    assert saved["model"] == "osnet_x0_25"


def test_missing_root_or_dataset_folder_is_named(tiny_market, tmp_path):
    with pytest.raises(FileNotFoundError, match="data root"):
        check_dataset_folders(str(tmp_path / "nope"), ["market1501"])
    with pytest.raises(FileNotFoundError, match="expected its folder at .*market1501"):
        dataset_records(tiny_config(str(tmp_path)))
    assert not os.listdir(tmp_path)  # torchreid never saw it: no folder created, no download
    with pytest.raises(ValueError, match="Unknown dataset 'market'"):
        check_dataset_folders(tiny_market, ["market"])


def test_unreadable_dataset_names_the_folder(tiny_market, tmp_path):
    import shutil
    root = tmp_path / "root"
    shutil.copytree(tiny_market, root)
    query = next(p for p in root.rglob("query") if p.is_dir())
    (query / "not_a_market_name.jpg").write_bytes(next(query.glob("*.jpg")).read_bytes())
    with pytest.raises(ValueError, match="not_a_market_name.jpg: not a Market-1501 file name"):
        dataset_records(tiny_config(str(root)))


@pytest.mark.parametrize("name, message", [("0002_c9s1_000001_00.jpg", "camera 9"),
                                           ("1602_c1s1_000001_00.jpg", "identity 1602")])
def test_out_of_range_labels_name_the_file(tiny_market, tmp_path, name, message):
    import shutil
    root = tmp_path / "root"
    shutil.copytree(tiny_market, root)
    query = next(p for p in root.rglob("query") if p.is_dir())
    (query / name).write_bytes(next(query.glob("*.jpg")).read_bytes())
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        dataset_records(tiny_config(str(root)))


def test_an_empty_split_folder_is_named(tiny_market, tmp_path):
    import shutil
    root = tmp_path / "root"
    shutil.copytree(tiny_market, root)
    train = next(p for p in root.rglob("bounding_box_train") if p.is_dir())
    for image in train.glob("*.jpg"):
        image.unlink()
    with pytest.raises(ValueError, match="bounding_box_train: no .jpg images"):
        dataset_records(tiny_config(str(root)))


def test_bad_run_options_are_refused(tiny_market, two_weights, tmp_path):
    for opts, message in ((["pixelfade.batch_size", "-1"], "batch_size"),
                          (["pixelfade.seed", "-5"], "seed"),
                          (["pixelfade.protect", "['train']"], "protect")):
        with pytest.raises(ValueError, match=message):
            protect_dataset(tiny_config(tiny_market, *opts), two_weights[0], str(tmp_path))
