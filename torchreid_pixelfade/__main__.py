"""``python -m torchreid_pixelfade ...`` (what ``torchrun -m torchreid_pixelfade`` runs)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
