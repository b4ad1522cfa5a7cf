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
                          (["pixelfade.protect", "['train']"], "protect"),
                          (["pixelfade.eps_flip_multiple", "-1"], "eps_flip_multiple")):
        with pytest.raises(ValueError, match=message):
            protect_dataset(tiny_config(tiny_market, *opts), two_weights[0], str(tmp_path))


def test_calibrated_eps_is_measured_once_and_reused_on_resume(tiny_market, two_weights, tmp_path,
                                                               caplog, monkeypatch):
    from torchreid_pixelfade.workflows import calibration

    opts = ["pixelfade.protector", "pixelfade", "pixelfade.steps", 1, "pixelfade.seed", 0,
            "pixelfade.eps_flip_multiple", 2.0]
    cfg = tiny_config(tiny_market, *opts)
    measured = []
    measure = calibration._measure
    monkeypatch.setattr(calibration, "_measure", lambda *a: measured.append(1) or measure(*a))
    first = protect_dataset(cfg, two_weights[0], str(tmp_path / "p"), limit=2)
    eps, stored = first.identity.hparams["eps"], first.identity.eps_calibration
    assert stored == {"flip_multiple": 2.0, "images": 4}  # 2 query + 2 gallery images
    assert eps != cfg.pixelfade.eps and first.identity.hparams["eps_mode"] == "absolute"
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["identity"]["eps_calibration"] == stored
    # resumed: the folder's eps is reused, not measured again
    with caplog.at_level("INFO", logger="torchreid_pixelfade.workflows.calibration"):
        again = protect_dataset(cfg, two_weights[0], str(tmp_path / "p"), limit=2)
    assert measured == [1] and again.identity.hparams["eps"] == eps
    assert "as calibrated for the images already in" in caplog.text
    # another multiple is measured and refused by the folder, with the difference named
    with pytest.raises(ValueError, match="eps_calibration"):
        protect_dataset(tiny_config(tiny_market, *opts[:-1], 3.0), two_weights[0],
                        str(tmp_path / "p"), limit=2)
    # a protector without eps ignores the option
    plain = protect_dataset(tiny_config(tiny_market, "pixelfade.eps_flip_multiple", 1.0),
                            two_weights[0], str(tmp_path / "identity"), limit=2)
    assert plain.identity.eps_calibration == {}
    assert "eps_calibration" not in json.loads(
        (tmp_path / "identity" / "manifest.json").read_text())["identity"]


@pytest.mark.parametrize("opts", [["pixelfade.enabled", True],
                                  ["data.transforms", "['random_flip', 'pixelfade']"]])
def test_run_refuses_calibration_where_it_is_not_applied(tiny_market, opts):
    from torchreid_pixelfade.workflows import run

    cfg = tiny_config(tiny_market, "pixelfade.eps_flip_multiple", 1.0, *opts)
    with pytest.raises(ValueError, match="eps_flip_multiple is applied by `protect` only"):
        run(cfg, "cpu")


def test_a_loose_calibrated_bound_is_warned_about(tiny_market, two_weights, tmp_path, caplog,
                                                   monkeypatch):
    from torchreid_pixelfade.workflows import calibration

    cfg = tiny_config(tiny_market, "pixelfade.protector", "pixelfade", "pixelfade.steps", 1,
                      "pixelfade.eps_flip_multiple", 0.5)
    for ratio, warned in ((0.6, True), (0.4, False)):  # x 0.5: above / below 0.25
        monkeypatch.setattr(calibration, "flip_to_pair", lambda *a, **k: ratio)
        caplog.clear()
        with caplog.at_level("WARNING", logger="torchreid_pixelfade.workflows.calibration"):
            protect_dataset(cfg, two_weights[0], str(tmp_path / str(ratio)), limit=1)
        assert ("the bound is 0.30 of the median distance" in caplog.text) is warned
        assert ("the bound is" in caplog.text) is warned
