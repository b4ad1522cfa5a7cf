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


def test_protector_kwargs_adapter():
    cfg = C.get_default_config()
    kwargs = C.protector_kwargs(cfg)
    assert kwargs["steps"] == 100 and kwargs["seed"] is None and kwargs["beta_temp"] == 0.04
    C.merge_opts(cfg, ["pixelfade.protector", "blur"])
    assert C.protector_kwargs(cfg) == {"sigma": None}


@pytest.mark.parametrize("path", sorted(__import__("glob").glob(
    __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "configs", "*.yaml"))))
def test_shipped_configs_merge(path):
    cfg = C.get_default_config()
    C.merge_file(cfg, path)
    assert cfg.model.pretrained is False
