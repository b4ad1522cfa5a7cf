"""One wing per Re-ID task. Each protects its galleries through ``protect/`` + ``store/`` and
evaluates through ``evaluation/``; no engine imports another.

- ``image``: torchreid's image Re-ID (the evaluation hook, the per-image transform, training).
- ``visible_infrared``: SYSU-MM01 / RegDB, RGB queries against protected infrared galleries.
- ``text_image``: CUHK-PEDES / ICFG-PEDES / RSTPReid, text queries against protected galleries
  (readers and tokenizers so far).
"""
