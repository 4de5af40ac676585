import pytest

from edge.epoch import next_epoch, parse_epoch, read_epoch


def test_first_start_is_epoch_one_and_each_start_adds_one(tmp_path):
    state = tmp_path / "state"
    assert read_epoch(state) == 0
    assert [next_epoch(state) for _ in range(3)] == [1, 2, 3]
    assert (state / "epoch").read_text().strip() == "3"
    assert read_epoch(state) == 3
    assert not list(state.glob(".*tmp"))  # the temporary file was renamed, not left behind


def test_parse_epoch_rejects_garbage():
    assert parse_epoch(" 12\n") == 12
    with pytest.raises(ValueError):
        parse_epoch("-1")
    with pytest.raises(ValueError):
        parse_epoch("twelve")
