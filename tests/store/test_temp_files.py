"""Item 5: temporary files left by a killed write are cleaned by the next run, only ours."""
import os

from store_helpers import Counting, run


def leave_temp_files(out, records):
    """Temporary files as ``io._atomic_target`` names them, left by a kill mid-write."""
    sub = os.path.dirname(out / records[0].output_key)
    ours = [os.path.join(sub, ".tmp-ab3_xyz9" + os.path.basename(records[0].output_key)),
            str(out / ".tmp-0123abcdmanifest.json")]
    others = [str(out / ".tmpfoo"), str(out / "notes.tmp-12345678x"),
              str(out.parent / ".tmp-abcdefghx.png")]
    for path in ours + others:
        with open(path, "wb") as handle:
            handle.write(b"half written")
    return ours, others


def test_temp_files_of_a_killed_run_are_removed_by_the_next(tiny_records, tmp_path):
    root, records = tiny_records
    out = tmp_path / "out"
    run(Counting(), records[:4], out, root)
    ours, others = leave_temp_files(out, records)
    run(Counting(), records[:4], out, root)
    assert not any(os.path.exists(p) for p in ours)
    assert all(os.path.exists(p) for p in others)


def test_temp_files_are_kept_while_another_writer_runs(tiny_records, tmp_path):
    root, records = tiny_records
    out = tmp_path / "out"
    run(Counting(), records[:4], out, root)
    seen, ours = [], []

    def other_part():
        ours.extend(leave_temp_files(out, records)[0])  # as if part 0 were writing them
        run(Counting(), records[12:16], out, root, part=1)
        seen.append([os.path.exists(p) for p in ours])

    run(Counting(during=other_part), records[:12], out, root)
    assert seen == [[True, True]]  # part 0 was live: its files might be being written
    run(Counting(), records[:16], out, root)
    assert not any(os.path.exists(p) for p in ours)
