import torch

from torchreid_pixelfade.models import AuthorizedModel
from torchreid_pixelfade.protect import PixelFade
from torchreid_pixelfade.store import (ProtectionIdentity, file_sha256, protection_identity,
                                       state_dict_sha256)


def test_one_builder_for_files_and_modules(random_model, tmp_path):
    protector = PixelFade(random_model, steps=3, seed=0)
    path = tmp_path / "w.pth"
    torch.save(random_model.model.state_dict(), path)
    from_file = protection_identity(protector, random_model, str(path), 64, 32, "tiny")
    from_module = protection_identity(protector, random_model, random_model.model, 64, 32, "tiny")
    assert from_file.weights_sha256 == file_sha256(path)
    assert from_module.weights_sha256 == state_dict_sha256(random_model.model)
    assert from_file.mean == (0.485, 0.456, 0.406) and from_file.std == (0.229, 0.224, 0.225)
    assert from_file.hparams == protector.hparams() and from_file.model == "tiny-random"


def test_key_is_stable_and_changes_with_any_field(random_model):
    identity = protection_identity(PixelFade(random_model, steps=3, seed=0), random_model,
                                   random_model.model, 64, 32, "tiny")
    assert identity.key() == ProtectionIdentity.from_dict(identity.to_dict()).key()
    other = protection_identity(PixelFade(random_model, steps=4, seed=0), random_model,
                                random_model.model, 64, 32, "tiny")
    assert other.key() != identity.key()
    normalised = AuthorizedModel(random_model.model, (0.5,) * 3, (0.5,) * 3, name="tiny-random")
    assert protection_identity(PixelFade(normalised, steps=3, seed=0), normalised,
                               random_model.model, 64, 32, "tiny").key() != identity.key()


def test_reduced_precision_is_part_of_the_identity_float32_folders_unchanged(random_model):
    def identity(model):
        return protection_identity(PixelFade(model, steps=3, seed=0), model, random_model.model,
                                   64, 32, "tiny")

    plain = identity(random_model)
    assert "numerics" not in plain.to_dict()  # float32 identities (and their hashes) as before
    for precision, numerics in (("tf32", ""), ("bf16", "bf16"), ("fp16", "fp16")):
        model = AuthorizedModel(random_model.model, name="tiny-random", precision=precision)
        assert identity(model).numerics == numerics
    bf16 = identity(AuthorizedModel(random_model.model, name="tiny-random", precision="bf16"))
    assert bf16.to_dict()["numerics"] == "bf16" and bf16.key() != plain.key()
    assert ProtectionIdentity.from_dict(bf16.to_dict()) == bf16
    # a float32 folder refuses a bf16 run and the reverse, naming the difference
    assert not plain.accepts(bf16) and not bf16.accepts(plain) and plain.accepts(plain)
    assert plain.differences(bf16) == ["numerics: 'fp32' -> 'bf16'"]
