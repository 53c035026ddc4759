"""Smoke runs of the benchmark scripts at tiny sizes: they run end to end and write their table and plot."""

import pytest

from recbole_mamba.bench import accuracy, efficiency, scale, scan, serving


def test_scan_benchmark_writes_table_and_plot(tmp_path):
    rows = scan.main(["--lengths", "8", "33", "--batch", "1", "--dim", "4", "--state", "2", "--repeats", "1",
                      "--out", str(tmp_path)])
    assert [row["length"] for row in rows] == [8, 33]
    assert all(row["error"] < 1e-5 and row["chunked"] > 0 for row in rows)
    assert "| 33 |" in (tmp_path / "scan.md").read_text()
    assert (tmp_path / "scan.png").stat().st_size > 0


def test_efficiency_benchmark_measures_each_model_with_ratios(tmp_path):
    efficiency.main(["--lengths", "16", "--batch", "2", "--repeats", "1", "--items", "50",
                     "--models", "RecMamba", "SASRec", "--out", str(tmp_path)])
    table = (tmp_path / "efficiency_cpu.md").read_text()
    assert "| RecMamba torch | 16 |" in table and "| SASRec | 16 |" in table and "| 1.00 | 1.00 |" in table
    assert "error" not in table.lower() and (tmp_path / "efficiency_cpu.png").stat().st_size > 0


def test_accuracy_benchmark_smoke_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --runs path, while each run works in its own folder
    arguments = ["--profile", "smoke", "--models", "RecMamba", "RecMamba+retrieval", "SASRecSDPA", "--out",
                 str(tmp_path), "--runs", "runs.pkl"]
    summary, runs = accuracy.main(arguments)
    assert set(summary["rows"]["ml-100k"]) == {("RecMamba", 20), ("RecMamba+retrieval", 20), ("SASRecSDPA", 20),
                                               ("HistoryLookup", 10_000), ("MostPopular", 10_000)}
    curve = summary["curve"]["lifelong-synthetic"]
    assert {key for key in curve if key[0] == "RecMamba"} == {("RecMamba", 8), ("RecMamba", 16)}
    variant = runs[("lifelong-synthetic", "RecMamba+retrieval", 16, 1)]
    assert variant["test_result"] != runs[("lifelong-synthetic", "RecMamba", 16, 1)]["test_result"]
    assert variant["options"]["history_retrieval"] is True and "- RecMamba+retrieval HR@10 at L = 16" in (
        tmp_path / "accuracy_smoke.md").read_text()
    assert all(low <= mean <= high for row in curve.values() for mean, low, high in [row["hit@10"]])
    assert len({len(run["users"]) for run in runs.values() if run["dataset"] == "lifelong-synthetic"}) == 1
    table = (tmp_path / "accuracy_smoke.md").read_text()
    assert "## ml-100k (real data;" in table and "(SYNTHETIC data" in table and "| RecMamba | 20 | " in table
    assert "| RecMamba L=16 | RecMamba L=8 |" in table and (tmp_path / "accuracy_smoke.png").stat().st_size > 0
    # with every run in the --runs file, nothing trains again and the tables are the same
    monkeypatch.setattr(accuracy, "train_once", lambda job: pytest.fail(f"trained {job['model']} again"))
    assert accuracy.main(arguments)[0] == summary and (tmp_path / "accuracy_smoke.md").read_text() == table


def test_serving_benchmark_times_step_and_recompute(tmp_path):
    rows = serving.main(["--lengths", "8", "24", "--batches", "1", "3", "--items", "50", "--repeats", "1",
                         "--step-repeats", "1", "--slab-positions", "40", "--budget", "1e-9", "--out", str(tmp_path)])
    recmamba = [row for row in rows if row["model"] == "RecMamba"]
    assert [(row["batch"], row["length"]) for row in recmamba] == [(1, 8), (1, 24), (3, 8), (3, 24)]
    assert all(row["step"] > 0 and row["difference"] < 1e-5 for row in recmamba if "recompute" in row)
    assert all("step" not in row for row in rows if row["model"] == "SASRecSDPA")
    table = (tmp_path / "serving.md").read_text()
    assert "| RecMamba | 3 | 24 |" in table and "skipped: ~" in table and "| SASRecSDPA | 1 | 8 | - |" in table
    assert (tmp_path / "serving.png").stat().st_size > 0


def test_scale_benchmark_quick(tmp_path):
    runs, memory_runs = scale.main(["--quick", "--out", str(tmp_path), "--workdir", str(tmp_path / "work")])
    assert [(run["window"], run["catalogue"], run["sparse"]) for run in runs] == [
        ("L=64", 7400, True), ("L=64", 500, False), ("L=16", 7400, True), ("L=16", 500, False)]
    assert all(run["eval_s"] is not None for run in runs[:2]) and [run["label"] for run in memory_runs] == [
        "RecMamba, eval_batch_size 4096", "RecMamba, eval_batch_size 8", "SASRecSDPA, eval_batch_size 4096",
        "SASRecSDPA, eval_batch_size 8"]
    table = (tmp_path / "scale_quick.md").read_text()
    assert "SYNTHETIC" in table and "| L=16 | 7,400 (" in table and "5 / 157 |" in table
    assert "| SASRecSDPA, eval_batch_size 8 | " in (tmp_path / "scale_memory_quick.md").read_text()
    assert (tmp_path / "scale_quick.png").stat().st_size > 0
