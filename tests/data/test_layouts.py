import pytest

from torchreid_pixelfade.data.layouts import check_market1501, check_market1501_name


@pytest.mark.parametrize("name", ["0002_c1s1_000451_03.jpg", "-1_c3s2_000001_00.jpg",
                                  "1501_c6s1_000001_00.jpg", "0000_c1s1_000001_00.jpg"])
def test_names_torchreid_accepts_pass(name):
    check_market1501_name(f"/data/query/{name}")


@pytest.mark.parametrize("name, message", [("readme.jpg", "not a Market-1501 file name"),
                                           ("1502_c1s1_000001_00.jpg", "identity 1502"),
                                           ("0002_c0s1_000001_00.jpg", "camera 0")])
def test_names_torchreid_would_crash_on_are_named(name, message):
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        check_market1501_name(f"/data/query/{name}")


def test_real_cuhk03_tree_passes(shared_data):
    check_market1501(shared_data)


def test_a_root_without_market1501_is_left_to_other_checks(tmp_path):
    check_market1501(str(tmp_path))
