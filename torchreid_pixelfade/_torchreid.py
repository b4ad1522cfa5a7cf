"""One import shim for both torchreid layouts.

PyPI ``torchreid`` 0.2.x moved upstream deep-person-reid under ``torchreid.reid``; a source install
of deep-person-reid 1.4.0 keeps ``torchreid.data``, ``torchreid.models`` ... at the top level. Every
module of this package reaches torchreid through ``tr`` so it works with both.
"""
import warnings

with warnings.catch_warnings():
    # torchreid warns on every import that its Cython ranking code is missing.
    warnings.filterwarnings("ignore", message=".*Cython.*")
    try:
        import torchreid.reid as tr  # PyPI torchreid 0.2.x
    except ImportError:  # source install of deep-person-reid
        import torchreid as tr

__all__ = ["tr"]
