from torchreid_pixelfade.data.synthetic import (
    SyntheticConfig,
    make_synthetic_images,
    make_synthetic_market1501,
)
