import glob
import os

import pytest

from torchreid_pixelfade import config as C


def test_defaults_have_torchreid_keys_and_pixelfade_node():
    cfg = C.get_default_config()
    assert cfg.model.name == "resnet50" and cfg.test.ranks == [1, 5, 10, 20]
    assert cfg.pixelfade.enabled is False and cfg.pixelfade.eps == 0.03
    assert isinstance(cfg.pixelfade.beta, float) and isinstance(cfg.pixelfade.steps, int)


def test_opts_merge_coerces_int_to_float_and_names_bad_keys():
    cfg = C.get_default_config()
    C.merge_opts(cfg, ["pixelfade.beta", "1", "pixelfade.steps", "7"])
    assert cfg.pixelfade.beta == 1.0 and isinstance(cfg.pixelfade.beta, float)
    with pytest.raises(KeyError, match="pixelfade.nope"):
        C.merge_opts(cfg, ["pixelfade.nope", "1"])
    with pytest.raises(ValueError, match="pixelfade.steps"):
        C.merge_opts(cfg, ["pixelfade.steps", "'many'"])


def test_yaml_with_unknown_key_or_wrong_type_names_the_key(tmp_path):
    (tmp_path / "a.yaml").write_text("pixelfade:\n  epsilon: 0.1\n")
    with pytest.raises(KeyError, match="pixelfade.epsilon"):
        C.merge_file(C.get_default_config(), str(tmp_path / "a.yaml"))
    (tmp_path / "b.yaml").write_text("pixelfade:\n  enabled: 'yes'\n")
    with pytest.raises(ValueError, match="pixelfade.enabled"):
        C.merge_file(C.get_default_config(), str(tmp_path / "b.yaml"))
    (tmp_path / "c.yaml").write_text("pixelfade:\n  eps: 1\n")
    cfg = C.get_default_config()
    C.merge_file(cfg, str(tmp_path / "c.yaml"))
    assert cfg.pixelfade.eps == 1.0


CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*.yaml")) +
                                        glob.glob(os.path.join(CONFIGS, "*", "*.yaml"))))
def test_shipped_configs_merge(path):
    cfg = C.get_default_config()
    C.merge_file(cfg, path)
    assert cfg.model.pretrained is False


def test_parse_overrides():
    assert C.parse_overrides("eps=0.05, target='zeros',steps=5") == {
        "eps": 0.05, "target": "zeros", "steps": 5}
    assert C.parse_overrides("") == {}
    with pytest.raises(ValueError, match="key=value"):
        C.parse_overrides("eps")


def test_numbers_are_accepted_for_strings():
    cfg = C.get_default_config()
    C.merge_opts(cfg, ["pixelfade.cache_dir", "2024", "data.root", "7"])
    assert cfg.pixelfade.cache_dir == "2024" and cfg.data.root == "7"
    with pytest.raises(KeyError, match="pixelfade.avih"):
        C.merge_opts(cfg, ["pixelfade.avih", "1"])  # a node, not a value


def test_data_type_is_checked():
    cfg = C.get_default_config()
    C.merge_opts(cfg, ["data.type", "video"])
    with pytest.raises(ValueError, match="Unknown data.type 'video'"):
        C.check_data_type(cfg)


def test_none_only_where_the_default_is_none():
    cfg = C.get_default_config()
    for key in ("pixelfade.seed", "pixelfade.batch_size", "pixelfade.quantize"):
        with pytest.raises(ValueError, match=key):
            C.merge_opts(cfg, [key, "None"])
    C.merge_opts(cfg, ["pixelfade.blur.sigma", "None", "pixelfade.mosaic.cell", "8"])
    assert cfg.pixelfade.blur.sigma is None and cfg.pixelfade.mosaic.cell == 8
