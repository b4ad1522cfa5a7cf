"""One wing per Re-ID task. Each protects its galleries through ``protect/`` + ``store/`` and
evaluates through ``evaluation/``; no engine imports another.

- ``image``: torchreid's image Re-ID (the evaluation hook, the per-image transform, training).
"""
