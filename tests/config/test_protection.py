import dataclasses

import pytest

from torchreid_pixelfade import config as C
from torchreid_pixelfade.protect import (Protector, build_protector, list_protectors,
                                         protector_params)
from torchreid_pixelfade.protect.base import PROTECTORS
from torchreid_pixelfade.protect.params import HyperParameters, hparam, hyperparameters


def test_documented_pixelfade_keys_and_defaults():
    cfg = C.get_default_config()
    assert cfg.pixelfade.eps == 0.03 and cfg.pixelfade.steps == 100
    kwargs = C.protector_kwargs(cfg)
    assert kwargs["steps"] == 100 and kwargs["seed"] is None and kwargs["beta_temp"] == 0.04
    C.merge_opts(cfg, ["pixelfade.protector", "blur", "pixelfade.seed", "3"])
    assert C.protector_kwargs(cfg) == {"sigma": None, "quantize": True}


def test_config_defaults_are_the_params_defaults():
    cfg = C.get_default_config()
    for name in list_protectors():
        defaults = {f.name: f.default for f in dataclasses.fields(protector_params(name))}
        kwargs = C.protector_kwargs(cfg, name)
        assert kwargs == {k: v for k, v in defaults.items() if k in kwargs}, name


def changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return value  # strings are choices; None stays


@pytest.mark.parametrize("name", list_protectors())
def test_every_parameter_is_reachable_from_overrides_and_yaml(name, tmp_path):
    fields = [f for f in dataclasses.fields(protector_params(name)) if f.name != "seed"]
    opts = []
    for field in fields:
        opts += [C.option_key(name, field.name), str(changed(field.default))]
    cfg = C.get_default_config()
    C.merge_opts(cfg, opts)
    kwargs = C.protector_kwargs(cfg, name)
    assert {f.name: kwargs[f.name] for f in fields} == {
        f.name: changed(f.default) for f in fields}
    yaml = "".join(f"{'  ' if name == 'pixelfade' else '    '}{f.name}: {changed(f.default)}\n"
                   for f in fields if f.default is not None)
    header = "pixelfade:\n" + ("" if name == "pixelfade" else f"  {name}:\n")
    (tmp_path / "c.yaml").write_text(header + yaml)
    from_file = C.get_default_config()
    C.merge_file(from_file, str(tmp_path / "c.yaml"))
    assert C.protector_kwargs(from_file, name) == {**kwargs, **{
        f.name: f.default for f in fields if f.default is None}}


def test_avih_options_reach_the_protector(random_model):
    cfg = C.get_default_config()
    C.merge_opts(cfg, ["pixelfade.protector", "avih", "pixelfade.avih.step_size", "0.02",
                       "pixelfade.avih.patience", "4", "pixelfade.seed", "1"])
    protector = build_protector("avih", random_model, **C.protector_kwargs(cfg))
    hparams = protector.hparams()
    assert hparams["step_size"] == 0.02 and hparams["patience"] == 4 and hparams["seed"] == 1


def test_a_new_protector_gets_its_node_without_edits():
    @hyperparameters
    class ShuffleParams(HyperParameters):
        """Hyper-parameters of a test protector."""

        rounds: int = hparam(2, "how often to shuffle.")

    class Shuffle(Protector):
        Params = ShuffleParams

        def _protect(self, images, *args):
            return images.flip(-1)

    PROTECTORS["shuffle_for_test"] = Shuffle
    Shuffle.name = "shuffle_for_test"
    try:
        cfg = C.get_default_config()
        C.merge_opts(cfg, ["pixelfade.shuffle_for_test.rounds", "5"])
        assert C.protector_kwargs(cfg, "shuffle_for_test") == {"rounds": 5}
    finally:
        del PROTECTORS["shuffle_for_test"]
