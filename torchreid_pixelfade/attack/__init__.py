"""Recovery attack: a pix2pix U-Net trained on (protected, original) pairs to invert protection."""
from .recovery import (attacker_prior, load_attacker, load_pairs, matching_scores, pairs_from_protected, recover,
                       recovery_metrics, run_attack, train_recovery)
from .unet import UNet, init_weights, max_depth

__all__ = ["UNet", "init_weights", "max_depth", "pairs_from_protected", "load_pairs",
           "train_recovery", "recover", "recovery_metrics", "matching_scores", "attacker_prior",
           "run_attack", "load_attacker"]
