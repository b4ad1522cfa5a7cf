"""Privacy report (paper Tables 1-4, Figure 3); same as ``torchreid-pixelfade report``.

    python tools/benchmark_privacy.py --config-file configs/osnet_x0_25_128x64.yaml \
        --root ../shared/data/cuhk03-detected --weights runs/osnet/model.pth --output report/ \
        [--rows identity blur mosaic avih pixelfade] [--ablations] [--attack-epochs 20] \
        [-- KEY VALUE ...]

Config overrides (``KEY VALUE``) come last; after ``--rows`` separate them with ``--``.
"""
import sys

from torchreid_pixelfade.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
