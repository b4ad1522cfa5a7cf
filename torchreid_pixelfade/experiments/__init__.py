"""Compositions of the workflows into the paper's artefacts: the offline demo, the privacy
report (Tables 1-4, Figure 3)."""
