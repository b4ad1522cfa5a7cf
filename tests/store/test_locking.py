"""Item 3: one writer per folder part, refused at once; other settings refused for any part."""
import logging
import signal

import pytest

from torchreid_pixelfade.store import FolderLockedError, ProtectedFolder, ProtectionIdentity

from store_helpers import IDENTITY, Counting, copy_dataset, run, stalled_writer

OTHER = ProtectionIdentity(**{**IDENTITY.__dict__, "hparams": {"steps": 4}})


class Interrupt(Exception):
    pass


def second_writer(records, out, root, errors, **kwargs):
    """A run started while the first one is protecting its first batch; records its error."""
    def start():
        second = Counting()
        try:
            run(second, records, out, root, **kwargs)
        except (OSError, ValueError) as error:
            errors.append(error)
        errors.append(second.seen)
    return start


@pytest.mark.parametrize("identity", [IDENTITY, OTHER])
def test_a_second_writer_is_refused_at_once(tiny_records, tmp_path, identity):
    root, records = tiny_records
    errors = []
    first = Counting(during=second_writer(records, tmp_path, root, errors, identity=identity))
    folder = run(first, records, tmp_path, root)
    assert len(errors) == 2 and errors[1] == 0, errors  # refused before protecting anything
    assert f"another run is writing into {tmp_path}" in str(errors[0])
    assert ".lock-0" in str(errors[0])
    assert first.seen == len(records) and len(folder) == len(records)
    assert ProtectedFolder.open(tmp_path).identity == IDENTITY


def test_a_writer_of_another_part_with_other_settings_is_refused(tiny_records, tmp_path):
    root, records = tiny_records
    errors = []
    first = Counting(during=second_writer(records, tmp_path, root, errors, identity=OTHER,
                                          part=1))
    run(first, records, tmp_path, root)
    assert "other settings" in str(errors[0]) and errors[1] == 0


def test_a_writer_of_another_part_with_the_same_settings_may_run(tiny_records, tmp_path):
    root, records = tiny_records
    errors = []
    first = Counting(during=second_writer(records[8:], tmp_path, root, errors, part=1))
    folder = run(first, records[:8], tmp_path, root)
    assert errors == [len(records) - 8]
    assert len(folder) == len(records) == len(ProtectedFolder.open(tmp_path))
    assert not list(tmp_path.glob("manifest.part-*"))


def test_the_lock_is_released_after_a_failure(tiny_records, tmp_path):
    root, records = tiny_records

    def fail():
        raise Interrupt

    with pytest.raises(Interrupt):
        run(Counting(during=fail), records, tmp_path, root)
    again = Counting()
    assert len(run(again, records, tmp_path, root)) == len(records)


def test_bad_part_names_are_refused(tiny_records, tmp_path):
    root, records = tiny_records
    with pytest.raises(ValueError, match="part"):
        run(Counting(), records, tmp_path, root, part="../x")


def test_without_file_locks_a_run_warns_and_goes_on(tiny_records, tmp_path, monkeypatch,
                                                    caplog):
    from torchreid_pixelfade.store import lock
    monkeypatch.setattr(lock, "fcntl", None)
    monkeypatch.setattr(lock, "msvcrt", None)
    root, records = tiny_records
    with caplog.at_level(logging.WARNING):
        assert len(run(Counting(), records[:4], tmp_path, root)) == 4
    assert "no file locking" in caplog.text


def test_another_process_is_refused_and_a_killed_one_leaves_no_stale_lock(tiny_records,
                                                                         tmp_path):
    root, records = copy_dataset(tiny_records[1], tmp_path / "src", count=6)
    out = tmp_path / "out"
    child = stalled_writer(records, out, stall_at=4)  # after one batch of 2
    try:
        for identity in (IDENTITY, OTHER):
            with pytest.raises(FolderLockedError, match="another run is writing into"):
                run(Counting(), records, out, root, identity=identity)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    resumed = Counting()
    assert len(run(resumed, records, out, root)) == 6 and resumed.seen == 4
