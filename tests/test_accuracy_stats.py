"""Bootstrap intervals, paired differences, per-user metrics, and per-user ranks captured against RecBole's averages."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recbole_mamba.bench import confidence
from recbole_mamba.bench.per_user import captured_evaluations
from recbole_mamba.bench.reference_rules import HistoryLookup, MostPopular
from recbole_mamba.quick_start import run


def test_per_user_metrics_from_ranks():
    values = confidence.per_user_metrics([1, 3, 0, 11], ks=(10,))
    assert values["hit@10"].tolist() == [1, 1, 0, 0]
    assert values["ndcg@10"].tolist() == pytest.approx([1, 0.5, 0, 0])
    assert values["mrr@10"].tolist() == pytest.approx([1, 1 / 3, 0, 0])
    assert confidence.ranks_from_topk([[0, 0, 1, 1], [0, 0, 0, 1]]).tolist() == [3, 0]


def test_bootstrap_interval_matches_the_normal_approximation():
    values = np.random.default_rng(0).random(4000) < 0.3
    indices = confidence.resample_indices(values.size, seed=1)
    mean, low, high = confidence.interval(values, indices)
    half_width = 1.96 * math.sqrt(mean * (1 - mean) / values.size)
    assert low < mean < high and (high - low) / 2 == pytest.approx(half_width, rel=0.1)


def test_paired_difference_sees_what_unpaired_intervals_hide():
    rng = np.random.default_rng(2)
    base = rng.random(1000)
    better = base + 0.01  # the same users, every one slightly better
    indices = confidence.resample_indices(base.size, seed=3)
    _, low, high = confidence.interval(base, indices)
    assert high - low > 0.02  # the single-model interval is wider than the difference ...
    difference = confidence.paired_difference(better, base, indices)
    assert difference[0] == pytest.approx(0.01) and confidence.verdict(difference) == "higher"  # ... pairing sees it
    assert confidence.verdict(confidence.paired_difference(base, better, indices)) == "lower"
    assert confidence.verdict(confidence.paired_difference(base, base[::-1], indices)) == "comparable"


def test_history_lookup_ranks_frequent_then_recent_items():
    rule = SimpleNamespace(ITEM_SEQ="seq", ITEM_SEQ_LEN="len", n_items=6)
    batch = {"seq": torch.tensor([[2, 3, 2, 4, 0], [5, 1, 0, 0, 0]]), "len": torch.tensor([4, 2])}
    scores = HistoryLookup.full_sort_predict(rule, batch)
    assert scores[0].argsort(descending=True)[:3].tolist() == [2, 4, 3] and scores[0, 5] == 0
    assert scores[1].argsort(descending=True)[:2].tolist() == [1, 5]


TINY = {"MAX_ITEM_LIST_LENGTH": 20, "user_inter_num_interval": "[20,24)", "epochs": 1, "train_mode": "seq2seq",
        "train_batch_size": 256, "eval_batch_size": 7, "hidden_size": 8, "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [5, 10], "show_progress": False}


@pytest.mark.parametrize("model", ["RecMamba", HistoryLookup, MostPopular])
def test_captured_ranks_reproduce_recboles_averaged_metrics(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with captured_evaluations() as evaluations:
        result = run(model, "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp_path / "saved")})
    assert len(evaluations) == 2  # one validation, then the test
    users, ranks = evaluations[-1]
    assert len(np.unique(users)) == len(users) > 20
    values = confidence.per_user_metrics(ranks, ks=(5, 10))
    for name, value in values.items():  # RecBole rounds to 4 decimals
        assert value.mean() == pytest.approx(float(result["test_result"][name]), abs=6e-5), name


def test_probe_compares_variants_with_the_baseline_on_the_same_users(tmp_path, monkeypatch):
    from recbole_mamba.bench import accuracy_probe

    monkeypatch.chdir(tmp_path)
    done = accuracy_probe.main(["--profile", "smoke", "--length", "8", "--variant", "d_state=4,expand=1",
                                "--out", str(tmp_path / "probe.md")])
    assert [key[1] for key in done] == ["baseline", "d_state=4,expand=1"]
    first, second = done.values()
    assert np.array_equal(first["users"], second["users"]) and second["options"]["d_state"] == 4
    assert "| d_state=4,expand=1 | " in (tmp_path / "probe.md").read_text()
