"""torchreid-pixelfade: privacy-preserving person re-identification for torchreid."""
__version__ = "0.1.0"
