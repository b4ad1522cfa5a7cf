"""Recovery attack: a pix2pix U-Net trained on (protected, original) pairs to invert protection."""
from .recovery import (EpochOrder, PairDataset, attacker_prior, load_attacker, load_pairs,
                       matching_scores, pairs_from_protected, recover, recovery_metrics,
                       run_attack, train_recovery, train_recovery_on_pairs)
from .unet import UNet, init_weights, max_depth

__all__ = ["UNet", "init_weights", "max_depth", "pairs_from_protected", "load_pairs",
           "PairDataset", "EpochOrder", "train_recovery", "train_recovery_on_pairs", "recover",
           "recovery_metrics", "matching_scores", "attacker_prior", "run_attack", "load_attacker"]
