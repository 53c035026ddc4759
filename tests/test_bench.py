"""Smoke runs of the benchmark scripts at tiny sizes: they run end to end and write their table and plot."""

from recbole_mamba.bench import accuracy, efficiency, scan, serving


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


def test_accuracy_benchmark_smoke_profile(tmp_path):
    comparison, curve = accuracy.main(["--profile", "smoke", "--models", "RecMamba", "SASRecSDPA",
                                       "--out", str(tmp_path)])
    assert set(comparison["ml-100k"]) == {"RecMamba", "SASRecSDPA"} and list(curve) == [8, 16]
    assert all(0 <= summary["hit@10"][0] <= 1 for summary in comparison["ml-100k"].values())
    table = (tmp_path / "accuracy_smoke.md").read_text()
    assert "## ml-100k (real data)" in table and "| RecMamba | " in table
    assert (tmp_path / "accuracy_smoke.png").stat().st_size > 0


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
