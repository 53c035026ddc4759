"""KuaiRand converter, synthetic KuaiRand-format generator and the bundled dataset/kuairand (all tiny and fast)."""

import csv
import statistics
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from recbole_mamba.data.converter_common import inter_file_stats, repeat_stats
from recbole_mamba.data.kuairand import KUAIRAND_COLUMNS, KuaiRandFormatError, convert, find_log_files, main
from recbole_mamba.data.synthetic_kuairand import SyntheticConfig, generate
from recbole_mamba.data.synthetic_marker import is_synthetic, synthetic_description

TINY = SyntheticConfig(users=6, items=120, clusters=6, short_length=(30, 60), lifelong_length=(80, 120),
                       long_length=(150, 200), interests=(2, 3), favourites=(5, 10))
HEADER = "user_id:token\titem_id:token\ttimestamp:float"
BUNDLED = REPO_ROOT / "dataset" / "kuairand"


def row(user, video, time_ms, **values):
    """One KuaiRand log row (all 19 columns) with zeros wherever ``values`` says nothing."""
    data = dict.fromkeys(KUAIRAND_COLUMNS, 0)
    data.update(user_id=user, video_id=video, time_ms=time_ms, date=20220408, hourmin=1600, **values)
    return [data[name] for name in KUAIRAND_COLUMNS]


def write_log(folder, name, rows, header=KUAIRAND_COLUMNS):
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_inter(path):
    lines = Path(path).read_text().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def seconds(ms):
    """Exact decimal seconds of integer milliseconds, computed independently of the converter."""
    return format((Decimal(ms) / 1000).normalize(), "f")


# ---------------------------------------------------------------- synthetic generator
def test_generator_is_deterministic_and_marked(tmp_path):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    stats = generate(first, TINY)
    generate(second, TINY)
    generate(other, SyntheticConfig(**{**TINY.__dict__, "seed": TINY.seed + 1}))
    names = sorted(p.name for p in first.iterdir())
    assert names == ["SYNTHETIC", "log_random_4_22_to_5_08_1k.csv", "log_standard_4_08_to_4_21_1k.csv",
                     "log_standard_4_22_to_5_08_1k.csv"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / names[2]).read_bytes() != (other / names[2]).read_bytes()
    assert is_synthetic(first) and "seed=2024" in synthetic_description(first)
    assert (first / names[2]).read_text().splitlines()[0] == ",".join(KUAIRAND_COLUMNS)
    assert stats["users"] == 6 and sum(stats["files"].values()) == stats["interactions"] + stats["random_exposures"]


def test_generator_rows_are_plausible(tmp_path):
    generate(tmp_path, TINY)
    rows = []
    for path in sorted(tmp_path.glob("log_*.csv")):
        with open(path) as handle:
            rows += [dict(r, file=path.name) for r in csv.DictReader(handle)]
    for r in rows:
        assert r["file"].startswith("log_random") == (r["is_rand"] == "1")
        assert (int(r["date"]) >= 20220422) == ("4_22_to_5_08" in r["file"])
        assert int(r["hourmin"]) % 100 == 0 and 0 <= int(r["hourmin"]) <= 2300
        duration, play = int(r["duration_ms"]), int(r["play_time_ms"])
        assert r["long_view"] == str(int(play >= min(duration, 18000)))
    by_user = {}
    for r in sorted(rows, key=lambda r: int(r["time_ms"])):
        by_user.setdefault(r["user_id"], []).append(int(r["time_ms"]))
    assert all(len(set(times)) == len(times) for times in by_user.values())  # strictly increasing per user
    clicks = sum(r["is_click"] == "1" for r in rows) / len(rows)
    assert 0.2 < clicks < 0.8


def test_generator_long_range_check_separates_short_and_long_context(tmp_path):
    stats = generate(tmp_path, SyntheticConfig(users=12, items=600, clusters=10, short_length=(300, 400),
                                               lifelong_length=(600, 800), long_length=(800, 1000)))
    assert stats["all_in_history"] > stats["all_in_last_50"] + 0.4
    assert stats["hr10_long_recent"] > stats["hr10_short_recent"] + 0.05


@pytest.mark.parametrize("version, expected", [
    ("27k", ["log_random_4_22_to_5_08_27k.csv", "log_standard_4_08_to_4_21_27k_part1.csv",
             "log_standard_4_08_to_4_21_27k_part2.csv", "log_standard_4_22_to_5_08_27k_part1.csv",
             "log_standard_4_22_to_5_08_27k_part2.csv"]),
    ("pure", ["log_random_4_22_to_5_08_pure.csv", "log_standard_4_08_to_4_21_pure.csv",
              "log_standard_4_22_to_5_08_pure.csv"]),
])
def test_generator_versions_and_discovery(tmp_path, version, expected):
    generate(tmp_path / "raw", SyntheticConfig(**{**TINY.__dict__, "version": version}))
    assert sorted(p.name for p in (tmp_path / "raw").glob("log_*.csv")) == expected
    found = [p.name for p in find_log_files(tmp_path / "raw", version=version, logs="all")]
    assert found == expected[1:] + expected[:1]  # by period, standard before random, then by part
    with pytest.raises(KuaiRandFormatError, match="no KuaiRand log files"):
        find_log_files(tmp_path / "raw", version="1k")


# ---------------------------------------------------------------- converter on generated logs
def test_round_trip_matches_raw_rows_exactly(tmp_path):
    raw = tmp_path / "raw"
    generate(raw, TINY)
    stats = convert(raw, tmp_path / "out")

    # Independent expectation, in plain Python: standard logs in period order, stable sort by (user, time).
    rows = []
    for name in ("log_standard_4_08_to_4_21_1k.csv", "log_standard_4_22_to_5_08_1k.csv"):
        with open(raw / name) as handle:
            rows += [(int(r["user_id"]), int(r["video_id"]), int(r["time_ms"])) for r in csv.DictReader(handle)]
    rows.sort(key=lambda r: (r[0], r[2]))
    users = {u: i + 1 for i, u in enumerate(sorted({r[0] for r in rows}))}
    items = {v: i + 1 for i, v in enumerate(sorted({r[1] for r in rows}))}
    expected = [[str(users[u]), str(items[v]), seconds(t)] for u, v, t in rows]

    header, lines = read_inter(tmp_path / "out" / "kuairand" / "kuairand.inter")
    assert header == HEADER and lines == expected
    lengths = [sum(1 for r in rows if r[0] == u) for u in users]
    assert stats["users"] == len(users) == 6 and stats["items"] == len(items)
    assert stats["interactions"] == stats["rows_after_feedback"] == len(rows)
    assert stats["user_length_mean"] == round(statistics.mean(lengths), 2)
    assert stats["user_length_median"] == statistics.median(lengths)
    assert stats["user_length_max"] == max(lengths) and stats["user_length_min"] == min(lengths)
    assert stats["synthetic"] and is_synthetic(tmp_path / "out" / "kuairand")
    assert inter_file_stats(tmp_path / "out" / "kuairand" / "kuairand.inter") == {
        key: value for key, value in stats.items()
        if key in inter_file_stats(tmp_path / "out" / "kuairand" / "kuairand.inter")
    }


def test_random_logs_and_all_logs(tmp_path):
    raw = tmp_path / "raw"
    gen = generate(raw, TINY)
    standard = convert(raw, tmp_path / "out", name="s")
    random_only = convert(raw, tmp_path / "out", name="r", logs="random")
    both = convert(raw, tmp_path / "out", name="a", logs="all")
    assert random_only["interactions"] == gen["random_exposures"] > 0
    assert both["interactions"] == standard["interactions"] + random_only["interactions"]


# ---------------------------------------------------------------- converter on hand-written logs
def test_feedback_filter_keep_fields_and_id_remap(tmp_path):
    raw = tmp_path / "raw"
    write_log(raw, "log_standard_4_08_to_4_21_1k.csv", [
        row(700, 90, 3000, is_click=1, play_time_ms=11),
        row(700, 50, 1000, is_like=1),
        row(5, 90, 2000, is_click=1, is_like=1, play_time_ms=33),
        row(5, 70, 1500),
    ])
    convert(raw, tmp_path, name="clicks", feedback="click", keep_fields="is_like,play_time_ms")
    header, lines = read_inter(tmp_path / "clicks" / "clicks.inter")
    assert header == HEADER + "\tis_like:float\tplay_time_ms:float"
    assert lines == [["1", "1", "2", "1", "33"], ["2", "1", "3", "0", "11"]]  # users 5 -> 1, 700 -> 2; item 90 -> 1

    convert(raw, tmp_path, name="any", feedback="click,like")
    assert [line[:2] for line in read_inter(tmp_path / "any" / "any.inter")[1]] == [["1", "2"], ["2", "1"], ["2", "2"]]
    convert(raw, tmp_path, name="every")
    _, lines = read_inter(tmp_path / "every" / "every.inter")
    assert [line[:2] for line in lines] == [["1", "2"], ["1", "3"], ["2", "1"], ["2", "3"]]  # 50, 70, 90 -> 1, 2, 3
    assert min(int(line[0]) for line in lines) == 1 and min(int(line[1]) for line in lines) == 1
    with pytest.raises(KuaiRandFormatError, match="unknown --feedback"):
        convert(raw, tmp_path, name="bad", feedback="clicks")
    with pytest.raises(KuaiRandFormatError, match="no interactions left"):
        convert(raw, tmp_path, name="none", feedback="hate")
    assert not (tmp_path / "none").exists()


def test_time_order_is_stable_for_ties_across_files(tmp_path):
    raw = tmp_path / "raw"
    write_log(raw, "log_standard_4_08_to_4_21_1k.csv", [row(1, 30, 5000), row(1, 10, 1000), row(1, 20, 1000)])
    write_log(raw, "log_standard_4_22_to_5_08_1k.csv", [row(1, 40, 1000), row(1, 50, 999)])
    write_log(raw, "log_random_4_22_to_5_08_1k.csv", [row(1, 60, 1000, is_rand=1)])
    convert(raw, tmp_path, name="ties", logs="all")
    _, lines = read_inter(tmp_path / "ties" / "ties.inter")
    originals = {str(i + 1): v for i, v in enumerate([10, 20, 30, 40, 50, 60])}
    # time 999 first; then the four rows at 1000 in file order (4_08 standard, 4_22 standard, random); then 5000.
    assert [originals[line[1]] for line in lines] == [50, 10, 20, 40, 60, 30]
    assert [line[2] for line in lines] == ["0.999", "1", "1", "1", "1", "5"]


def test_k_core_is_iterative_and_max_user_length_keeps_latest(tmp_path):
    raw = tmp_path / "raw"
    rows = [row(1, 100, 1), row(1, 200, 2), row(2, 100, 3), row(2, 200, 4),  # a 2-core
            row(3, 100, 5), row(3, 300, 6),  # item 300 has one row: dropping it leaves user 3 with one row
            row(4, 400, 7)]
    write_log(raw, "log_standard_4_08_to_4_21_1k.csv", rows)
    stats = convert(raw, tmp_path, name="core", k_core_min=2)
    _, lines = read_inter(tmp_path / "core" / "core.inter")
    assert [line[:2] for line in lines] == [["1", "1"], ["1", "2"], ["2", "1"], ["2", "2"]]
    assert (stats["users"], stats["items"], stats["interactions"]) == (2, 2, 4)

    write_log(raw, "log_standard_4_08_to_4_21_1k.csv", [row(9, v, t) for v, t in [(1, 50), (2, 10), (3, 40), (4, 20)]])
    convert(raw, tmp_path, name="latest", max_user_length=2)
    _, lines = read_inter(tmp_path / "latest" / "latest.inter")
    assert [line[2] for line in lines] == ["0.04", "0.05"] and [line[1] for line in lines] == ["2", "1"]  # videos 3, 1


def test_repeat_stats_by_hand():
    import numpy as np

    user = np.array([1, 1, 1, 1, 2, 2])
    item = np.array([7, 8, 9, 7, 5, 5])
    stats = repeat_stats(user, item, windows=(2,))
    assert stats["last_in_last_2"] == 0.5  # user 1: item 7 is 3 back; user 2: item 5 is 1 back
    assert stats["last_in_history"] == 1.0
    assert stats["all_in_history"] == pytest.approx(2 / 6)


# ---------------------------------------------------------------- malformed input: one-line errors, nothing written
def test_malformed_value_names_file_and_line_and_leaves_output_untouched(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "out"
    good = [row(1, 10, 1000), row(1, 11, 2000)]
    write_log(raw, "log_standard_4_08_to_4_21_1k.csv", good)
    bad = write_log(raw, "log_standard_4_22_to_5_08_1k.csv", good + [row(2, "12x", 3000)])
    existing = out / "kuairand" / "kuairand.inter"
    existing.parent.mkdir(parents=True)
    existing.write_text("previous content\n")

    assert main(["--raw-dir", str(raw), "--out-dir", str(out), "--quiet"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert bad.name in message and "line 4" in message and "12x" in message
    assert existing.read_text() == "previous content\n"
    assert sorted(p.name for p in existing.parent.iterdir()) == ["kuairand.inter"]  # no temp file left

    assert main(["--raw-dir", str(raw), "--out-dir", str(tmp_path / "fresh"), "--quiet"]) == 2
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("content, expected", [
    ("", "line 1: empty file"),
    (",".join(KUAIRAND_COLUMNS) + "\n", "line 2: no data rows"),
    ("user_id,video_id,date\n1,2,3\n", "line 1: missing column(s) time_ms"),
    (",".join(KUAIRAND_COLUMNS) + "\n" + ",".join(map(str, row(1, 2, 3)))[:-2] + "\n", "line 2: missing value"),
    (",".join(KUAIRAND_COLUMNS) + "\n" + ",".join(map(str, row(1, 2, 3))).replace(",3,", ",3.5,", 1) + "\n",
     "line 2: non-integer value '3.5' in column 'time_ms'"),
])
def test_bad_files_raise_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "raw" / "log_standard_4_08_to_4_21_1k.csv"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(KuaiRandFormatError) as error:
        convert(tmp_path / "raw", tmp_path / "out")
    assert str(path) in str(error.value) and expected in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_cli_exit_code_and_message_without_matching_files(tmp_path):
    (tmp_path / "raw").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "recbole_mamba.data.kuairand", "--raw-dir", str(tmp_path / "raw"),
         "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and "no KuaiRand log files" in result.stderr
    assert not (tmp_path / "out").exists()


def test_real_data_removes_a_stale_synthetic_marker(tmp_path):
    synthetic, real = tmp_path / "synthetic", tmp_path / "real"
    generate(synthetic, TINY)
    convert(synthetic, tmp_path / "out")
    assert is_synthetic(tmp_path / "out" / "kuairand")
    write_log(real, "log_standard_4_08_to_4_21_1k.csv", [row(1, 10, 1000)])
    stats = convert(real, tmp_path / "out")
    assert not stats["synthetic"] and not is_synthetic(tmp_path / "out" / "kuairand")
    assert read_inter(tmp_path / "out" / "kuairand" / "kuairand.inter")[1] == [["1", "1", "1"]]


# ---------------------------------------------------------------- the bundled dataset
def test_bundled_dataset_is_marked_synthetic_and_has_documented_stats():
    inter = BUNDLED / "kuairand.inter"
    assert inter.read_text().split("\n", 1)[0] == HEADER
    assert is_synthetic(BUNDLED) and is_synthetic(inter)
    assert "seed=2024" in synthetic_description(BUNDLED)
    assert "SYNTHETIC" in (BUNDLED / "README.md").read_text()
    stats = inter_file_stats(inter)
    assert (stats["users"], stats["items"], stats["interactions"]) == (100, 3000, 223205)
    assert (stats["user_length_mean"], stats["user_length_median"]) == (2232.05, 2169)
    assert (stats["user_length_min"], stats["user_length_max"]) == (226, 9156)
    assert (stats["last_in_last_50"], stats["last_in_last_2048"], stats["last_in_history"]) == (0.08, 0.86, 0.88)
    assert inter.stat().st_size < 6_000_000


def test_small_chunks_give_the_same_output_and_line_numbers(tmp_path):
    raw = tmp_path / "raw"
    generate(raw, TINY)
    convert(raw, tmp_path / "big", chunksize=1_000_000)
    convert(raw, tmp_path / "small", chunksize=7)
    assert (tmp_path / "big" / "kuairand" / "kuairand.inter").read_bytes() == \
           (tmp_path / "small" / "kuairand" / "kuairand.inter").read_bytes()
    write_log(tmp_path / "bad", "log_standard_4_08_to_4_21_1k.csv", [row(1, 2, t) for t in range(8)] + [row(1, 2, "")])
    with pytest.raises(KuaiRandFormatError, match=r"log_standard_4_08_to_4_21_1k.csv: line 10: missing value"):
        convert(tmp_path / "bad", tmp_path / "out", chunksize=3)


def test_generator_cli_writes_logs_and_dataset(tmp_path, capsys):
    from recbole_mamba.data.synthetic_kuairand import main as generator_main

    argv = ["--out", str(tmp_path / "raw"), "--users", "2", "--items", "100", "--clusters", "4", "--seed", "7",
            "--dataset-dir", str(tmp_path / "ds"), "--name", "tiny"]
    assert generator_main(argv) == 0
    printed = capsys.readouterr().out
    assert "rule-based HR@10" in printed and "tiny: 2 users" in printed
    folder = tmp_path / "ds" / "tiny"
    assert is_synthetic(folder) and "users=2 seed=7" in synthetic_description(folder)
    assert generator_main(["--out", str(tmp_path / "x"), "--items", "3", "--clusters", "4"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("variant, length", [(None, 2048), ("kuairand-5k", 5120), ("kuairand-10k", 10240)])
def test_dataset_yaml(variant, length):
    """What --dataset=kuairand [--config_files=properties/dataset/<variant>.yaml] configures."""
    from recbole_mamba.quick_start import Config

    files = [str(REPO_ROOT / "properties" / "dataset" / f"{variant}.yaml")] if variant else None
    config = Config(model="RecMamba", dataset="kuairand", config_file_list=files)
    assert config["MAX_ITEM_LIST_LENGTH"] == length and config["train_mode"] == "seq2seq"
    assert config["load_col"] == {"inter": ["user_id", "item_id", "timestamp"]}
    assert (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["TIME_FIELD"]) == ("user_id", "item_id",
                                                                                          "timestamp")
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"} and config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
    assert (config["topk"], config["metrics"], config["valid_metric"]) == ([10, 20], ["Hit", "NDCG", "MRR"], "NDCG@10")
    assert config["data_path"] == str(REPO_ROOT / "dataset" / "kuairand")
