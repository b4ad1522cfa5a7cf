"""The one door to torchreid: both layouts, and every reach into its private names.

PyPI ``torchreid`` 0.2.x moved upstream deep-person-reid under ``torchreid.reid``; a source install
of deep-person-reid 1.4.0 keeps ``torchreid.data``, ``torchreid.models`` ... at the top level. Every
module of this package reaches torchreid through this module, so it works with both, and the few
private names it relies on (the model factory and dataset registry dicts, a dataset's transform
helper, the signature of ``Engine._evaluate``) are named here and nowhere else.

torchreid is imported when this module is, so library modules import it inside the functions that
need it: ``import torchreid_pixelfade.protect`` never loads torchreid.
"""
from __future__ import annotations

import inspect
import warnings

with warnings.catch_warnings():
    # torchreid warns on every import that its Cython ranking code is missing.
    warnings.filterwarnings("ignore", message=".*Cython.*")
    try:
        import torchreid.reid as tr  # PyPI torchreid 0.2.x
    except ImportError:  # source install of deep-person-reid
        import torchreid as tr

#: Parameters of ``Engine._evaluate`` that the evaluation hook overrides, in order.
EVALUATE_PARAMETERS = ("self", "dataset_name", "query_loader", "gallery_loader", "dist_metric",
                       "normalize_feature", "visrank", "visrank_topk", "save_dir",
                       "use_metric_cuhk03", "ranks", "rerank")


def model_names() -> list[str]:
    """Names accepted by ``torchreid.models.build_model`` (its private factory dict)."""
    return sorted(vars(tr.models)["__model_factory"])


def image_datasets() -> dict:
    """torchreid's registry of image datasets, ``{name: class}`` (a private module dict)."""
    return vars(tr.data.datasets).setdefault("__image_datasets", {})


def register_image_dataset(name: str, dataset_class: type) -> None:
    """Registers (or re-registers, idempotently) an image dataset class under ``name``."""
    registered = image_datasets()
    if registered.get(name) is dataset_class:
        return
    if name in registered:
        registered[name] = dataset_class
    else:
        tr.data.register_image_dataset(name, dataset_class)


def transform_image(dataset, image):
    """Applies a torchreid dataset's transform ``k_tfm`` times as its ``__getitem__`` does."""
    return dataset._transform_image(dataset.transform, dataset.k_tfm, image)


def check_evaluate_signature() -> None:
    """Fails loudly when torchreid's ``Engine._evaluate`` no longer has the parameters the
    evaluation hook overrides (a torchreid upgrade changed its private API).

    Raises:
        RuntimeError: naming the expected and the found parameters.
    """
    found = tuple(inspect.signature(tr.engine.Engine._evaluate).parameters)
    if found != EVALUATE_PARAMETERS:
        raise RuntimeError(f"torchreid's Engine._evaluate takes {found}; the PixelFade hook "
                           f"was written for {EVALUATE_PARAMETERS}")


__all__ = ["tr", "EVALUATE_PARAMETERS", "model_names", "image_datasets", "register_image_dataset",
           "transform_image", "check_evaluate_signature"]
