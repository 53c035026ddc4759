"""Sampled softmax against the full softmax (CE) at the same budget: RecMamba's test accuracy.

    python -m recbole_mamba.bench.sampled_softmax           # ml-100k and the bundled kuairand (about an hour)
    python -m recbole_mamba.bench.sampled_softmax --quick   # seconds (a smoke test)

RecMamba trains with each loss (CE over all items; ``sampled_softmax`` with 256 shared negatives drawn uniformly or by
popularity, log-Q corrected), everything else equal: seq2seq training, the dataset's budget, full-ranking
evaluation of the test users at the best validation epoch (NDCG@10), leave-one-out by time. Datasets: ml-100k (real)
and the bundled kuairand (SYNTHETIC). Mean ± std over seeds; writes ``results/sampled_softmax.md``.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from recbole_mamba.bench.results import RESULTS_DIR, write_text

METRICS = ["hit@10", "ndcg@10", "mrr@10", "hit@20", "ndcg@20"]
LOSSES = {
    "CE (all items)": {"loss_type": "CE"},
    "sampled_softmax, 256 uniform": {"loss_type": "sampled_softmax", "num_negatives": 256},
    "sampled_softmax, 256 popularity": {"loss_type": "sampled_softmax", "num_negatives": 256,
                                        "negative_distribution": "popularity"},
}
SHARED = {"train_mode": "seq2seq", "topk": [10, 20], "metrics": ["Hit", "NDCG", "MRR"], "valid_metric": "NDCG@10",
          "show_progress": False, "eval_batch_size": 256}
PROFILES = {
    "full": {"seeds": [2024, 2025], "datasets": {
        "ml-100k": {"MAX_ITEM_LIST_LENGTH": 200, "train_batch_size": 32, "learning_rate": 0.003, "epochs": 10},
        "kuairand": {"MAX_ITEM_LIST_LENGTH": 2048, "train_batch_size": 4, "learning_rate": 0.005, "epochs": 4}}},
    "quick": {"seeds": [1], "datasets": {
        "ml-100k": {"MAX_ITEM_LIST_LENGTH": 20, "train_batch_size": 512, "epochs": 1, "hidden_size": 8,
                    "d_state": 4, "user_inter_num_interval": "[20,26)"}}},
}


def train(dataset, options, workdir):
    """Test metrics (at the best validation epoch) and wall time of one run."""
    from recbole_mamba.quick_start import run

    began = time.perf_counter()
    result = run("RecMamba", dataset, config_dict={**options, "checkpoint_dir": str(Path(workdir) / "saved")})
    return {**{name: float(result["test_result"][name]) for name in METRICS},
            "seconds": time.perf_counter() - began, "synthetic": bool(result["synthetic_data"])}


def summarise(runs):
    """Mean and standard deviation over seeds of every metric (and of the time)."""
    return {name: (statistics.fmean(run[name] for run in runs),
                   statistics.stdev(run[name] for run in runs) if len(runs) > 1 else 0.0)
            for name in METRICS + ["seconds"]} | {"synthetic": runs[0]["synthetic"]}


def markdown(results, args, profile):
    lines = [f"# Sampled softmax vs CE (`python -m recbole_mamba.bench.sampled_softmax"
             f"{' --quick' if args.quick else ''}`)", "",
             "RecMamba (the project's defaults), seq2seq training, test metrics at the best validation epoch "
             f"(NDCG@10), full ranking over all items, leave-one-out by time; mean ± std over seeds {profile['seeds']}."
             " Budgets: " + "; ".join(f"{name}: {options}" for name, options in profile["datasets"].items()) + ".",
             ""]
    for dataset, rows in results.items():
        synthetic = next(iter(rows.values()))["synthetic"]
        lines += [f"## {dataset}" + (" (SYNTHETIC data)" if synthetic else " (real data)"), "",
                  "| loss | " + " | ".join(METRICS) + " | train+eval s |", "|---|" + "---:|" * (len(METRICS) + 1)]
        lines += [f"| {loss} | " + " | ".join(f"{summary[name][0]:.4f} ± {summary[name][1]:.4f}" for name in METRICS)
                  + f" | {summary['seconds'][0]:.0f} |" for loss, summary in rows.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy budget on part of ml-100k")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full"]
    results = {}
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # RecBole writes ./log and ./log_tensorboard
        try:
            for dataset, budget in profile["datasets"].items():
                results[dataset] = {}
                for loss, options in LOSSES.items():
                    runs = [train(dataset, {**SHARED, **budget, **options, "seed": seed}, scratch)
                            for seed in profile["seeds"]]
                    results[dataset][loss] = summary = summarise(runs)
                    print(f"{dataset} / {loss}: hit@10 {summary['hit@10'][0]:.4f}, ndcg@10 "
                          f"{summary['ndcg@10'][0]:.4f}", flush=True)
        finally:
            os.chdir(previous)
    table = markdown(results, args, profile)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / ("sampled_softmax_quick.md" if args.quick else "sampled_softmax.md"), table)
    return results


if __name__ == "__main__":
    main()
