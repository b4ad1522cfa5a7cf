"""Data: the protected-folder dataset for torchreid (``data.protected``) and synthetic
pedestrians in real dataset layouts (``data.synthetic``). Nothing is imported here, so importing
one of them does not load the other."""
