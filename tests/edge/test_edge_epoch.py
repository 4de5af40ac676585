import pytest

from edge.epoch import next_epoch, parse_epoch, read_epoch


def test_first_start_is_epoch_one_and_each_start_adds_one(tmp_path):
    state = tmp_path / "state"
    assert read_epoch(state) == 0
    assert [next_epoch(state) for _ in range(3)] == [1, 2, 3]
    assert int((state / "epoch").read_text()) == 3
    assert read_epoch(state) == 3
    assert not list(state.glob(".*tmp"))  # the temporary file was renamed, not left behind


def test_later_starts_overwrite_the_file_in_place_so_a_full_disk_cannot_stop_them(tmp_path):
    state = tmp_path / "state"
    (state).mkdir()
    (state / "epoch").write_text("41\n")  # written before the fixed width: replaced once
    assert next_epoch(state) == 42
    inode = (state / "epoch").stat().st_ino
    assert [next_epoch(state) for _ in range(2)] == [43, 44]
    assert (state / "epoch").stat().st_ino == inode, "the same file, its own bytes overwritten: no new block needed"


def test_parse_epoch_rejects_garbage():
    assert parse_epoch(" 12\n") == 12
    with pytest.raises(ValueError):
        parse_epoch("-1")
    with pytest.raises(ValueError):
        parse_epoch("twelve")
