"""Accuracy evidence: RecMamba against SASRec and GRU4Rec with RecBole's trainer and full-ranking evaluators.

    python -m recbole_mamba.bench.accuracy                  # default: about half an hour on a 2-core CPU
    python -m recbole_mamba.bench.accuracy --profile smoke  # seconds (CI)

Every model trains with the same splits (leave-one-out by time), the same budget (epochs, windows per batch,
learning rate) and the same all-position (seq2seq) loss: RecMamba, SASRecSDPA (RecBole's SASRec architecture and
parameters, fused attention) and GRU4RecAllPositions (RecBole's GRU4Rec) — RecBole's own SASRec/GRU4Rec would
learn from one position per window only. Test HR/NDCG/MRR@{10,20} of the best validation epoch, mean and standard
deviation over seeds, on ml-100k (real) and on the bundled kuairand set (SYNTHETIC: KuaiRand-format logs with
long-range structure; see dataset/kuairand/README.md), plus RecMamba's accuracy versus MAX_ITEM_LIST_LENGTH on
kuairand. Writes ``results/accuracy.md`` and ``results/accuracy.png``.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from recbole_mamba.bench.results import RESULTS_DIR, label_measured, save_figure, write_text

METRICS = ["hit@10", "ndcg@10", "mrr@10", "hit@20", "ndcg@20", "mrr@20"]
MODELS = ["RecMamba", "SASRecSDPA", "GRU4RecAllPositions"]
SHARED = {  # identical for every model: architecture sizes at RecBole-like defaults, budget, evaluation
    "train_mode": "seq2seq", "hidden_size": 64, "embedding_size": 64, "n_layers": 2, "n_heads": 2,
    "inner_size": 256, "stopping_step": 10, "topk": [10, 20], "metrics": ["Hit", "NDCG", "MRR"],
    "valid_metric": "NDCG@10", "show_progress": False,
}
PROFILES = {
    "default": {
        "seeds": [2024, 2025],
        "datasets": {
            "ml-100k": {"MAX_ITEM_LIST_LENGTH": 200, "train_batch_size": 32, "epochs": 10, "learning_rate": 0.003},
            "kuairand": {"MAX_ITEM_LIST_LENGTH": 2048, "train_batch_size": 4, "epochs": 4, "learning_rate": 0.005},
        },
        "lengths": [50, 200, 512, 1024, 2048],
    },
    "smoke": {
        "seeds": [1, 2],
        "datasets": {
            "ml-100k": {"MAX_ITEM_LIST_LENGTH": 20, "train_batch_size": 512, "epochs": 1,
                        "user_inter_num_interval": "[20,26)", "hidden_size": 8, "embedding_size": 8,
                        "inner_size": 16, "n_layers": 1, "n_heads": 1},
        },
        "lengths": [8, 16],
    },
}
LENGTH_CURVE_DATASET = {"default": "kuairand", "smoke": "ml-100k"}


_finished_runs = {}


def train_once(model, dataset, options, workdir):
    """Test metrics of one RecBole run (best validation checkpoint) and its wall time; each run is done once."""
    from recbole_mamba.quick_start import run

    key = (model, dataset, repr(sorted(options.items())))
    if key in _finished_runs:
        return _finished_runs[key]

    started = time.perf_counter()
    result = run(model=model, dataset=dataset, config_dict={**options, "checkpoint_dir": str(workdir / "saved")})
    _finished_runs[key] = {**{name: float(result["test_result"][name]) for name in METRICS},
                           "seconds": time.perf_counter() - started, "synthetic": bool(result["synthetic_data"])}
    return _finished_runs[key]


def summarise(runs):
    """Mean and standard deviation (over seeds) of every metric."""
    summary = {}
    for name in METRICS + ["seconds"]:
        values = [run[name] for run in runs]
        summary[name] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    summary["synthetic"] = runs[0]["synthetic"]
    return summary


def cell(mean_std):
    return f"{mean_std[0]:.4f} ± {mean_std[1]:.4f}"


def markdown(comparison, curve, args):
    lines = [
        "# Accuracy (`python -m recbole_mamba.bench.accuracy" + (" --profile smoke" if args.profile == "smoke" else "")
        + "`)",
        "",
        f"Test metrics at the best validation epoch (NDCG@10), full ranking over all items, leave-one-out by time; "
        f"mean ± standard deviation over seeds {args.seeds}. Same budget and all-position (seq2seq) loss for every "
        "model; hidden size 64; SASRecSDPA = RecBole's SASRec (2 layers, 2 heads) with fused attention; "
        "GRU4RecAllPositions = RecBole's GRU4Rec (1 layer). Budgets per dataset: "
        + "; ".join(f"{name}: {opts}" for name, opts in args.datasets.items()) + ".",
        "",
    ]
    for dataset, rows in comparison.items():
        synthetic = next(iter(rows.values()))["synthetic"]
        lines += [f"## {dataset}" + (" (SYNTHETIC data)" if synthetic else " (real data)"), "",
                  "| model | " + " | ".join(METRICS) + " | train+eval s |",
                  "|---|" + "---:|" * (len(METRICS) + 1)]
        lines += [f"| {model} | " + " | ".join(cell(summary[name]) for name in METRICS)
                  + f" | {summary['seconds'][0]:.0f} |" for model, summary in rows.items()]
        lines.append("")
    dataset = LENGTH_CURVE_DATASET[args.profile]
    lines += [f"## RecMamba versus MAX_ITEM_LIST_LENGTH on {dataset}"
              + (" (SYNTHETIC data)" if curve and next(iter(curve.values()))["synthetic"] else ""),
              "", f"Seed {args.seeds[0]}; otherwise the {dataset} budget above.", "",
              "| L | " + " | ".join(METRICS) + " |", "|---:|" + "---:|" * len(METRICS)]
    lines += [f"| {length} | " + " | ".join(f"{run[name]:.4f}" for name in METRICS) + " |"
              for length, run in curve.items()]
    return "\n".join(lines) + "\n"


def plot(comparison, curve, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(comparison) + 1, figsize=(5 * (len(comparison) + 1), 4))
    for axis, (dataset, rows) in zip(axes, comparison.items()):
        names = list(rows)
        for offset, metric in enumerate(["hit@10", "ndcg@10"]):
            positions = [index + 0.38 * offset for index in range(len(names))]
            axis.bar(positions, [rows[n][metric][0] for n in names], width=0.36,
                     yerr=[rows[n][metric][1] for n in names], capsize=3, label=metric)
        axis.set_xticks([index + 0.19 for index in range(len(names))], names, fontsize=8)
        synthetic = next(iter(rows.values()))["synthetic"]
        axis.set_title(f"{dataset}{' (synthetic)' if synthetic else ''}")
        axis.legend()
    lengths = list(curve)
    for metric in ["hit@10", "ndcg@10"]:
        axes[-1].plot(lengths, [curve[length][metric] for length in lengths], "o-", label=metric)
    axes[-1].set(xscale="log", xlabel="MAX_ITEM_LIST_LENGTH", title="RecMamba vs length")
    label_measured(axes[-1], lengths)
    axes[-1].legend()
    figure.tight_layout()
    save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.seeds, args.datasets, args.lengths = (PROFILES[args.profile][key] for key in ("seeds", "datasets", "lengths"))
    comparison, curve = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        previous = os.getcwd()
        os.chdir(workdir)  # RecBole writes ./log and ./log_tensorboard
        try:
            for dataset, budget in args.datasets.items():
                comparison[dataset] = {}
                for model in args.models:
                    runs = [train_once(model, dataset, {**SHARED, **budget, "seed": seed}, workdir)
                            for seed in args.seeds]
                    comparison[dataset][model] = summarise(runs)
                    print(f"{dataset:>9} {model:>20}: " + ", ".join(
                        f"{name}={cell(comparison[dataset][model][name])}" for name in ("hit@10", "ndcg@10")),
                        flush=True)
            dataset = LENGTH_CURVE_DATASET[args.profile]
            for length in args.lengths:
                options = {**SHARED, **args.datasets[dataset], "seed": args.seeds[0], "MAX_ITEM_LIST_LENGTH": length}
                curve[length] = train_once("RecMamba", dataset, options, workdir)
                print(f"RecMamba L={length}: hit@10={curve[length]['hit@10']:.4f}", flush=True)
        finally:
            os.chdir(previous)
    table = markdown(comparison, curve, args)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "accuracy" if args.profile == "default" else f"accuracy_{args.profile}"
    write_text(args.out / f"{name}.md", table)
    plot(comparison, curve, args.out / f"{name}.png")
    print(f"wrote {args.out / (name + '.md')} and {args.out / (name + '.png')}")
    return comparison, curve


if __name__ == "__main__":
    main()
