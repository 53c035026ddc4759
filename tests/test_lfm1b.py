"""LFM-1b converter on small files in LFM-1b's format, written by the tests (issue 10)."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from recbole_mamba.data import converter_common
from recbole_mamba.data.converter_common import RawDataError, remap_ids
from recbole_mamba.data.lfm1b import EVENTS_FILE, convert, main
from recbole_mamba.data.synthetic_marker import MARKER_NAME, is_synthetic

HEADER = "user_id:token\titem_id:token\ttimestamp:float"
T = 1_300_000_000
# (user-id, artist-id, album-id, track-id, timestamp), in file order.
EVENTS = [
    (7, 1, 10, 100, T + 300),
    (7, 1, 10, 101, T + 100),
    (7, 2, 20, 200, T + 200),
    (7, 1, 11, 110, T + 200),  # same second as the row above: file order is kept
    (7, 2, 20, 203, T + 200),  # album 20 and artist 2 again in that second: a duplicate at those levels
    (3, 2, 20, 201, T + 50),
    (3, 2, 20, 201, T + 50),  # the same play logged twice: a duplicate at every level
    (3, 1, 10, 100, T + 60),
    (3, 2, 21, 210, T + 60),
    (3, 2, 20, 202, T + 60),  # artist 2 again in that second: a duplicate at the artist level
    (3, 1, 10, 100, T + 400),  # a later play of the same track: kept
    (12, 3, 30, 300, T + 10),
]
COLUMN = {"artist": 1, "album": 2, "track": 3}
DUPLICATES = {"track": 1, "album": 2, "artist": 3}


def write_events(path, events, text=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else "".join("\t".join(map(str, row)) + "\n" for row in events))
    return path


def read_inter(path):
    lines = Path(path).read_text().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def expected_rows(events, level):
    """The converter's output computed independently, in plain Python."""
    rows = sorted(((e[0], e[COLUMN[level]], e[4]) for e in events), key=lambda r: (r[0], r[2]))  # stable
    seen, kept = set(), []
    for row in rows:
        if row not in seen:
            seen.add(row)
            kept.append(row)
    users = {u: str(n + 1) for n, u in enumerate(sorted({r[0] for r in kept}))}
    items = {i: str(n + 1) for n, i in enumerate(sorted({r[1] for r in kept}))}
    return [[users[u], items[i], str(t)] for u, i, t in kept]


# ---------------------------------------------------------------- conversion
@pytest.mark.parametrize("level", ["track", "album", "artist"])
def test_each_level_orders_deduplicates_and_remaps(tmp_path, level):
    events = write_events(tmp_path / "raw" / EVENTS_FILE, EVENTS)
    stats = convert(events, tmp_path / "out", level=level)
    header, lines = read_inter(tmp_path / "out" / f"lfm1b-{level}" / f"lfm1b-{level}.inter")
    assert header == HEADER and lines == expected_rows(EVENTS, level)
    assert stats["duplicates_dropped"] == DUPLICATES[level] and stats["interactions"] == len(EVENTS) - DUPLICATES[level]
    assert (stats["rows_read"], stats["rows_in_time_range"], stats["users"]) == (12, 12, 3)
    assert stats["items"] == len({e[COLUMN[level]] for e in EVENTS})
    assert not stats["synthetic"] and stats["level"] == level


def test_track_level_by_hand(tmp_path):
    convert(write_events(tmp_path / EVENTS_FILE, EVENTS), tmp_path, name="tracks")
    _, lines = read_inter(tmp_path / "tracks" / "tracks.inter")
    # users 3, 7, 12 -> 1, 2, 3; tracks 100, 101, 110, 200, 201, 202, 203, 210, 300 -> 1..9
    assert lines[:5] == [["1", "5", str(T + 50)], ["1", "1", str(T + 60)], ["1", "8", str(T + 60)],
                         ["1", "6", str(T + 60)], ["1", "1", str(T + 400)]]
    assert lines[5:9] == [["2", "2", str(T + 100)], ["2", "4", str(T + 200)], ["2", "3", str(T + 200)],
                          ["2", "7", str(T + 200)]]


def test_keep_duplicates(tmp_path):
    stats = convert(write_events(tmp_path / EVENTS_FILE, EVENTS), tmp_path, level="artist", keep_duplicates=True)
    assert stats["duplicates_dropped"] == 0 and stats["interactions"] == len(EVENTS)


def test_time_range_max_user_length_and_k_core(tmp_path):
    events = write_events(tmp_path / EVENTS_FILE, EVENTS)
    stats = convert(events, tmp_path, name="range", min_timestamp=T + 60, max_timestamp=T + 300)  # inclusive
    _, lines = read_inter(tmp_path / "range" / "range.inter")
    assert [int(line[2]) - T for line in lines] == [60, 60, 60, 100, 200, 200, 200, 300]
    assert (stats["rows_read"], stats["rows_in_time_range"]) == (12, 8)

    convert(events, tmp_path, name="latest", max_user_length=2)
    _, lines = read_inter(tmp_path / "latest" / "latest.inter")
    assert [(line[0], int(line[2]) - T) for line in lines] == [("1", 60), ("1", 400), ("2", 200), ("2", 300),
                                                               ("3", 10)]

    core = [(1, 0, 0, 100, T + 1), (1, 0, 0, 200, T + 2), (2, 0, 0, 100, T + 3), (2, 0, 0, 200, T + 4),
            (3, 0, 0, 100, T + 5), (3, 0, 0, 300, T + 6)]  # track 300 once: dropping it leaves user 3 one row
    stats = convert(write_events(tmp_path / "core" / EVENTS_FILE, core), tmp_path, name="core", k_core_min=2)
    assert read_inter(tmp_path / "core" / "core.inter")[1] == [["1", "1", str(T + 1)], ["1", "2", str(T + 2)],
                                                               ["2", "1", str(T + 3)], ["2", "2", str(T + 4)]]
    assert (stats["users"], stats["items"], stats["interactions"]) == (2, 2, 4)


def test_small_chunks_give_the_same_output_and_line_numbers(tmp_path):
    rng = np.random.default_rng(0)
    events = [(int(u), 0, 0, int(i), T + int(t)) for u, i, t in
              zip(rng.integers(0, 5, 200), rng.integers(0, 30, 200), rng.integers(0, 50, 200))]
    path = write_events(tmp_path / EVENTS_FILE, events)
    convert(path, tmp_path / "big", name="x")
    convert(path, tmp_path / "small", name="x", chunksize=7)
    assert (tmp_path / "big" / "x" / "x.inter").read_bytes() == (tmp_path / "small" / "x" / "x.inter").read_bytes()
    assert read_inter(tmp_path / "big" / "x" / "x.inter")[1] == expected_rows(events, "track")
    bad = write_events(tmp_path / "bad" / EVENTS_FILE, None, text="1\t2\t3\t4\t5\n" * 9 + "1\t2\t3\t4\tx\n")
    with pytest.raises(RawDataError, match=r"LFM-1b_LEs.txt: line 10: non-integer value 'x' in column 'timestamp'"):
        convert(bad, tmp_path / "out", chunksize=3)


def test_remap_ids_matches_sorting():
    rng = np.random.default_rng(1)
    for values in (rng.integers(0, 50, 1000), rng.integers(0, 10**9, 1000), rng.integers(-5, 5, 1000),
                   rng.integers(0, 50, 1000).astype(np.int32)):
        _, codes = np.unique(values, return_inverse=True)
        remapped = remap_ids(values)
        assert remapped.dtype == np.int32 and np.array_equal(remapped, codes + 1)


# ---------------------------------------------------------------- malformed input: one-line errors, nothing written
GOOD = "1\t2\t3\t4\t1300000000\n1\t2\t3\t5\t1300000001\n"


@pytest.mark.parametrize("text, expected", [
    ("", "line 1: empty file"),
    ("1\t2\t3\t4\n" + GOOD, "line 1: expected 5 tab-separated fields, saw 4"),
    ("1 2 3 4 5\n", "line 1: expected 5 tab-separated fields, saw 1"),
    (GOOD + "1\t2\t3\t4\t5\t6\n", "line 3: expected 5 fields, saw 6"),
    (GOOD + "1\t2\t3\t4\n", "line 3: missing value in column 'timestamp'"),
    (GOOD + "\n" + GOOD, "line 3: missing value in column 'user-id'"),
    (GOOD + "1\t2\t3x\t4\t5\n", "line 3: non-integer value '3x' in column 'album-id'"),  # checked at every level
    (GOOD + "1\t2\t3\t4\t1300000000.5\n", "line 3: non-integer value '1300000000.5' in column 'timestamp'"),
])
def test_malformed_rows_are_one_line_errors(tmp_path, text, expected):
    path = write_events(tmp_path / EVENTS_FILE, None, text=text)
    with pytest.raises(RawDataError) as error:
        convert(path, tmp_path / "out", level="track")
    assert f"{path}: {expected}; " in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_not_utf8_missing_file_and_bad_options(tmp_path):
    latin = tmp_path / "latin" / EVENTS_FILE
    latin.parent.mkdir()
    latin.write_bytes(b"1\t2\t3\t4\t5\n\xff\xfe\t2\t3\t4\t5\n")
    with pytest.raises(RawDataError, match="not a UTF-8 text file"):
        convert(latin, tmp_path / "out")
    with pytest.raises(RawDataError, match="no such file"):
        convert(tmp_path / "missing.txt", tmp_path / "out")
    events = write_events(tmp_path / EVENTS_FILE, EVENTS)
    with pytest.raises(RawDataError, match="--level: unknown level 'song'"):
        convert(events, tmp_path / "out", level="song")
    with pytest.raises(RawDataError, match="--name: invalid dataset name"):
        convert(events, tmp_path / "out", name="../x")
    with pytest.raises(RawDataError, match="is after --max-timestamp"):
        convert(events, tmp_path / "out", min_timestamp=T + 2, max_timestamp=T + 1)
    with pytest.raises(RawDataError, match="none of its 12 events meets --min-timestamp 1400000000; widen"):
        convert(events, tmp_path / "out", min_timestamp=1_400_000_000)
    with pytest.raises(RawDataError, match="no event left after --k-core 5"):
        convert(events, tmp_path / "out", k_core_min=5)
    assert not (tmp_path / "out").exists()


def test_cli_errors_leave_the_old_output_untouched(tmp_path, capsys):
    events = write_events(tmp_path / "raw" / EVENTS_FILE, None, text=GOOD + "1\t2\t3\t4\t5\t6\n")
    existing = tmp_path / "out" / "lfm1b-track" / "lfm1b-track.inter"
    existing.parent.mkdir(parents=True)
    existing.write_text("previous content\n")
    for source in (["--events", str(events)], ["--raw-dir", str(tmp_path / "raw")]):
        assert main([*source, "--out-dir", str(tmp_path / "out"), "--quiet"]) == 2
        message = capsys.readouterr().err.strip()
        assert message.startswith(f"error: {events}: line 3: expected 5 fields, saw 6; ") and "\n" not in message
        assert existing.read_text() == "previous content\n"
        assert sorted(p.name for p in existing.parent.iterdir()) == ["lfm1b-track.inter"]  # no temp file left

    write_events(tmp_path / "raw" / "copy" / EVENTS_FILE, EVENTS)
    assert main(["--raw-dir", str(tmp_path / "raw"), "--out-dir", str(tmp_path / "out")]) == 2
    assert f"a second {EVENTS_FILE}" in capsys.readouterr().err
    assert main(["--raw-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path / "out")]) == 2
    assert "raw directory does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--raw-dir", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "fresh")]) == 2
    assert f"no {EVENTS_FILE} (searched recursively)" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()


def test_failed_write_keeps_the_old_file_and_leaves_no_marker(tmp_path, monkeypatch):
    events = write_events(tmp_path / "raw" / EVENTS_FILE, EVENTS)
    (tmp_path / "raw" / MARKER_NAME).write_text("a test generator\n")
    folder = tmp_path / "out" / "lfm1b-track"
    folder.mkdir(parents=True)
    (folder / "lfm1b-track.inter").write_text("previous content\n")

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(converter_common, "_format_seconds", broken)
    with pytest.raises(OSError, match="disk full"):
        convert(events, tmp_path / "out")
    assert [p.name for p in folder.iterdir()] == ["lfm1b-track.inter"]  # no temp file, no marker
    assert (folder / "lfm1b-track.inter").read_text() == "previous content\n"


def test_synthetic_marker_is_copied_and_removed(tmp_path):
    synthetic = write_events(tmp_path / "synthetic" / EVENTS_FILE, EVENTS)
    (synthetic.parent / MARKER_NAME).write_text("a test generator\n")
    stats = convert(synthetic, tmp_path / "out")
    assert stats["synthetic"] and is_synthetic(tmp_path / "out" / "lfm1b-track")
    stats = convert(write_events(tmp_path / "real" / EVENTS_FILE, EVENTS), tmp_path / "out")
    assert not stats["synthetic"] and not is_synthetic(tmp_path / "out" / "lfm1b-track")


def test_module_command_line(tmp_path):
    write_events(tmp_path / "raw" / "LFM-1b" / EVENTS_FILE, EVENTS)
    result = subprocess.run(
        [sys.executable, "-m", "recbole_mamba.data.lfm1b", "--raw-dir", str(tmp_path / "raw"), "--out-dir",
         str(tmp_path / "out"), "--level", "album"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "read 12 events from" in result.stdout and "2 duplicate plays dropped; items are albums" in result.stdout
    assert "lfm1b-album: 3 users, 5 items, 10 interactions" in result.stdout
    assert read_inter(tmp_path / "out" / "lfm1b-album" / "lfm1b-album.inter")[1] == expected_rows(EVENTS, "album")


# ---------------------------------------------------------------- the output loads and trains
def test_recbole_mamba_loads_and_trains_on_the_output(tmp_path):
    from recbole_mamba.data import create_dataset
    from recbole_mamba.quick_start import Config, run

    rng = np.random.default_rng(0)
    events = [(user, 0, 0, (user * 7 + step) % 15, T + int(t))
              for user in range(6) for step, t in enumerate(rng.permutation(12) * 60)]
    rng.shuffle(events)
    convert(write_events(tmp_path / "raw" / EVENTS_FILE, events), tmp_path / "data")
    config_dict = {"data_path": str(tmp_path / "data"), "checkpoint_dir": str(tmp_path / "saved"), "epochs": 1,
                   "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 8,
                   "hidden_size": 8, "train_mode": "seq2seq", "show_progress": False}
    dataset = create_dataset(Config("RecMamba", "lfm1b-track", config_dict=config_dict))
    assert (dataset.user_num, dataset.item_num, dataset.inter_num) == (7, 16, 72)  # ids 1..n plus padding 0
    result = run("RecMamba", "lfm1b-track", config_dict=config_dict, saved=False)
    assert math.isfinite(result["best_valid_score"]) and result["synthetic_data"] is None
    assert all(math.isfinite(value) for value in dict(result["test_result"]).values())
