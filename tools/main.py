"""torchreid's ``scripts/main.py`` with PixelFade: ``python tools/main.py --config-file X ...``.

Same arguments as torchreid (``--config-file``, ``--root``, ``-s``, ``-t``, ``--transforms``,
trailing ``KEY VALUE``). ``pixelfade.enabled True`` adds protected query/gallery and the four
settings (O2O, P2P, O2P, P2O with Rank-k, mAP, mINP) to every evaluation and writes
``results.json`` to ``data.save_dir``. Equivalent to ``torchreid-pixelfade run ...``.
"""
import sys

from torchreid_pixelfade.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
