"""What identifies a protected folder: protector, hyper-parameters, model, weights, size, data.

A folder holds images protected one way only. :func:`protection_identity` is the one builder of
that identity, used by the ``protect`` command and the torchreid evaluation hook alike; a run
whose identity differs from the folder's is refused, one whose identity is equal resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import torch


#: values of an identity field that mean "not recorded" (not compared)
EMPTY = ((), [], "", {})


@dataclasses.dataclass(frozen=True)
class ProtectionIdentity:
    """The settings a protected folder was made with (stored in its manifest).

    Attributes:
        protector: registered protector name.
        hparams: the protector's hyper-parameters (``Protector.hparams()``).
        model: the authorised model's name.
        weights_sha256: SHA-256 of the weights file, or of the state dict for an in-memory
            model (see :func:`weights_digest`).
        height, width: the size images are protected and stored at.
        mean, std: the model's input normalisation.
        dataset: the dataset's name (or its folder).
        numerics: ``'bf16'`` or ``'fp16'`` when the model's forward ran in reduced precision
            (autocast), whose images differ from float32's; ``''`` for float32 (and TF32), left
            out of the manifest so that the identities of float32 folders are unchanged.
        eps_calibration: how ``hparams['eps']`` was calibrated for the model (``{'flip_multiple':
            m, 'images': n}``, see :mod:`torchreid_pixelfade.protect.calibration`); empty when
            eps was given, and then left out of the manifest. A resumed run with the same
            calibration reuses the folder's eps rather than measuring it again.
    """

    protector: str
    hparams: dict
    model: str
    weights_sha256: str
    height: int
    width: int
    mean: tuple = ()
    std: tuple = ()
    dataset: str = ""
    numerics: str = ""
    eps_calibration: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the manifest's ``identity``)."""
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        for optional in ("numerics", "eps_calibration"):
            if not data[optional]:
                del data[optional]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ProtectionIdentity":
        """Reads a manifest's identity; folders of format 1 lack ``mean``/``std``/``dataset``."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["mean"], values["std"] = (tuple(values.get(k) or ()) for k in ("mean", "std"))
        return cls(**values)

    def key(self) -> str:
        """A short stable hash of the identity (a cache folder name)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def differences(self, other: "ProtectionIdentity") -> list[str]:
        """``'key: mine -> theirs'`` for every field (hyper-parameters one by one) in which
        ``other`` differs from this identity, ignoring fields this one left empty."""
        mine, theirs = self.to_dict(), other.to_dict()
        found = [f"hparams.{k}: {mine['hparams'].get(k)!r} -> {theirs['hparams'].get(k)!r}"
                 for k in sorted(set(mine["hparams"]) | set(theirs["hparams"]))
                 if mine["hparams"].get(k) != theirs["hparams"].get(k)]
        found += [f"{k}: {mine[k]!r} -> {theirs.get(k)!r}" for k in mine
                  if k not in ("hparams", "numerics") and mine[k] not in EMPTY
                  and mine[k] != theirs.get(k)]
        if self.numerics != other.numerics:
            found.append(f"numerics: {self.numerics or 'fp32'!r} -> {other.numerics or 'fp32'!r}")
        return found

    def accepts(self, other: "ProtectionIdentity") -> bool:
        """Whether a run with identity ``other`` may write into a folder with this one.

        Folders written before the normalisation was recorded (format 1) leave ``mean``, ``std``
        and ``dataset`` empty; those fields are then not compared. ``numerics`` always is: a
        float32 folder refuses a bf16 run and the reverse.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        return self.numerics == other.numerics and all(
            mine[k] == theirs.get(k) for k in mine if mine[k] not in EMPTY)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def weights_digest(weights: str | os.PathLike | torch.nn.Module) -> str:
    """SHA-256 of a weights file (a path), or of a model's state dict (a module being trained,
    as in the evaluation hook)."""
    if isinstance(weights, torch.nn.Module):
        return state_dict_sha256(weights)
    return file_sha256(weights)


def protection_identity(protector, model, weights: str | os.PathLike | torch.nn.Module,
                        height: int, width: int, dataset: str,
                        eps_calibration: dict | None = None) -> ProtectionIdentity:
    """The identity of protecting ``dataset`` at ``height x width`` with ``protector``.

    Args:
        protector: a protector object (name and ``hparams()`` are recorded).
        model: the :class:`~torchreid_pixelfade.models.AuthorizedModel` (name, mean, std, and
            its reduced precision if any).
        weights: the weights file the model was loaded from, or the module itself.
        height, width: stored image size.
        dataset: dataset name.
        eps_calibration: how the protector's eps was calibrated, if it was.
    """
    return ProtectionIdentity(
        protector=protector.name, hparams=protector.hparams(), model=model.name,
        weights_sha256=weights_digest(weights), height=int(height), width=int(width),
        mean=_rounded(model.mean), std=_rounded(model.std), dataset=dataset,
        numerics=reduced_precision(model), eps_calibration=dict(eps_calibration or {}))


def reduced_precision(model) -> str:
    """``'bf16'`` or ``'fp16'`` if ``model`` runs its forward in that precision, else ``''``."""
    fast_paths = getattr(model, "fast_paths", None)
    precision = getattr(fast_paths, "precision", "fp32")
    return precision if precision in ("bf16", "fp16") else ""


def _rounded(values: torch.Tensor) -> tuple:
    """A float32 buffer as the decimals it was given (0.485, not 0.48500001430511475)."""
    return tuple(round(float(v), 6) for v in values.flatten())
