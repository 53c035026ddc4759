"""Training and evaluation at KuaiRand-1K scale, on SYNTHETIC data: the catalogue's size should not set the cost.

    python -m recbole_mamba.bench.scale            # 1,000 users, 11.7M interactions, 4.3M item ids (about an hour)
    python -m recbole_mamba.bench.scale --quick    # the same steps at toy size (a smoke test)

1. Data: :func:`recbole_mamba.data.synthetic_lifelong.write_synthetic_inter` (through ``bench.memory``'s cached
   ``ensure_dataset``) at KuaiRand-1K's shape, twice from the same random draws: item ids from ``--items`` (4,329,000,
   the real catalogue's size) and the same draws folded into ``--folded-items`` (20,000) ids. Users, lengths, times
   and the popularity shape are identical; only the catalogue differs. No real user data is involved.
2. For each catalogue and window (``L = 2048``, batch 8, then full ranking of the test users; and a short window,
   ``L = 64``, batch 16, where steps are many and cheap), RecMamba in a fresh process: loading, one training epoch
   (RecBole's trainer with :class:`~recbole_mamba.quick_start.trainer.SafeTraining`: seq2seq, ``sampled_softmax``
   with 256 shared negatives, Adam; ``sparse_item_embedding: auto``), and full ranking in item slices. The short
   window trains the first 600 of its ~183,000 steps only: its epoch time is extrapolated (and labelled so).
3. Memory at ordinary lengths: RecMamba and SASRecSDPA on ML-100k (real data; L = 200, batch 128, seq2seq, CE, RecBole's
   eval_batch_size), one epoch and one evaluation, peak RSS per phase.

Reports wall times and peak RSS (``VmHWM``) per phase and the ratios of the large catalogue to the folded one, as
``results/scale.md`` and ``results/scale.png``.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from recbole_mamba.bench.memory import ensure_dataset
from recbole_mamba.bench.results import RESULTS_DIR, save_figure, write_text
from recbole_mamba.bench.rss import peak_rss_bytes, reset_peak_rss

GIB = 2**30
PROFILES = {
    "full": {
        "users": 1000, "interactions": 11_700_000, "items": 4_329_000, "folded_items": 20_000,
        "windows": [{"name": "L=2048", "length": 2048, "batch": 8, "eval_batch": 64, "evaluate": True},
                    {"name": "L=64", "length": 64, "batch": 16, "eval_batch": 256, "evaluate": False,
                     "max_steps": 600}],
        "model": {}, "threads": None,
        "ml100k": {"MAX_ITEM_LIST_LENGTH": 200, "train_batch_size": 128}, "eval_batch_sizes": [4096, 256],
    },
    "quick": {
        "users": 20, "interactions": 20_000, "items": 7_400, "folded_items": 500,
        "windows": [{"name": "L=64", "length": 64, "batch": 4, "eval_batch": 8, "evaluate": True},
                    {"name": "L=16", "length": 16, "batch": 8, "eval_batch": 8, "evaluate": False, "max_steps": 5}],
        "model": {"hidden_size": 16, "d_state": 4, "sparse_item_embedding_min_items": 1000}, "threads": 1,
        "ml100k": {"MAX_ITEM_LIST_LENGTH": 20, "train_batch_size": 128, "user_inter_num_interval": "[20,26)",
                   "hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1}, "eval_batch_sizes": [4096, 8],
    },
}
SAMPLED_SOFTMAX = {"train_mode": "seq2seq", "loss_type": "sampled_softmax", "num_negatives": 256}


def child(spec):
    """Runs in a fresh process: load, train one epoch, evaluate; prints the phases as JSON on its last line."""
    import torch
    from recbole.utils import init_seed

    from recbole_mamba import data
    from recbole_mamba.quick_start import Config
    from recbole_mamba.quick_start.trainer import SparseDenseOptimizer, trainer_class

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    phases, began = [], time.perf_counter()

    def mark(phase, **extra):
        nonlocal began
        phases.append(dict(phase=phase, seconds=time.perf_counter() - began, peak_rss=peak_rss_bytes(), **extra))
        reset_peak_rss()
        began = time.perf_counter()

    load_average = round(os.getloadavg()[0], 1)
    config = Config(model=spec["model"], dataset=spec["dataset"], config_dict={
        **spec["options"], "epochs": 1, "show_progress": False, "state": "ERROR", "use_gpu": False})
    init_seed(config["seed"], config["reproducibility"])
    mark("imports and config")
    dataset = data.create_dataset(config)
    train_data, _, test_data = data.data_preparation(config, dataset)
    mark("load data", items=int(dataset.item_num - 1), interactions=int(len(dataset.inter_feat)))
    model = config.model_class(config, train_data._dataset)
    trainer = trainer_class(config)(config, model)
    mark("build model and trainer")
    steps = min(spec.get("max_steps") or len(train_data), len(train_data))
    trainer._train_epoch(itertools.islice(train_data, steps), 0)
    mark("train one epoch", steps=steps, epoch_steps=len(train_data))
    if spec["evaluate"]:
        trainer.evaluate(test_data, load_best_model=False)
        mark("evaluate (test, full ranking)", users=len(test_data._dataset))
    print(json.dumps({"phases": phases, "load_average": load_average, "threads": torch.get_num_threads(),
                      "sparse": isinstance(trainer.optimizer, SparseDenseOptimizer),
                      "ce_slice_logits": config["ce_slice_logits"]}))


def measure(spec, workdir):
    """``child(spec)`` in a fresh process; its result dict."""
    done = subprocess.run([sys.executable, "-m", "recbole_mamba.bench.scale", "--child", json.dumps(spec)],
                          capture_output=True, text=True, cwd=workdir)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-5000:] + done.stderr[-5000:])
        raise SystemExit(f"benchmark process for {spec['label']} failed with exit code {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    phases = {phase["phase"]: phase for phase in result["phases"]}
    train = phases["train one epoch"]
    evaluation = phases.get("evaluate (test, full ranking)")
    return {**spec, **result, "step_s": train["seconds"] / train["steps"], "steps": train["steps"],
            "epoch_steps": train["epoch_steps"], "epoch_s": train["seconds"] / train["steps"] * train["epoch_steps"],
            "eval_s": evaluation["seconds"] if evaluation else None,
            "peak_gib": max(phase["peak_rss"] for phase in result["phases"]) / GIB}


def synthetic_runs(args, profile):
    runs = []
    for window in profile["windows"]:
        for items in (profile["items"], profile["folded_items"]):
            folder = Path(args.workdir) / f"items-{items}"
            meta, _ = ensure_dataset(folder, profile["users"], profile["interactions"], items, args.seed)
            label = f"{window['name']}, {items:,} item ids"
            print(f"measuring {label} ...", file=sys.stderr, flush=True)
            runs.append(measure({
                "label": label, "model": "RecMamba", "dataset": "synthetic-lifelong", "window": window["name"],
                "catalogue": items, "distinct_items": meta["distinct_items"], "evaluate": window["evaluate"],
                "max_steps": window.get("max_steps"), "threads": profile["threads"],
                "options": {**SAMPLED_SOFTMAX, **profile["model"], "data_path": str(folder),
                            "checkpoint_dir": str(folder / "saved"),
                            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                            "MAX_ITEM_LIST_LENGTH": window["length"], "train_batch_size": window["batch"],
                            "eval_batch_size": window["eval_batch"]},
            }, args.workdir))
    return runs, meta


def ml100k_runs(args, profile):
    runs = []
    for model, eval_batch_size in itertools.product(("RecMamba", "SASRecSDPA"), profile["eval_batch_sizes"]):
        label = f"{model}, eval_batch_size {eval_batch_size}"
        print(f"measuring {label} on ml-100k ...", file=sys.stderr, flush=True)
        runs.append(measure({
            "label": label, "model": model, "dataset": "ml-100k", "evaluate": True, "threads": profile["threads"],
            "options": {"train_mode": "seq2seq", "checkpoint_dir": str(Path(args.workdir) / "saved"),
                        "eval_batch_size": eval_batch_size, **profile["ml100k"]},
        }, args.workdir))
    return runs


def gib(value):
    return f"{value / GIB:.2f}"


def command(args):
    return f"`python -m recbole_mamba.bench.scale{' --quick' if args.profile == 'quick' else ''}" + (
        f" --part {args.part}`" if args.part != "all" else "`")


def markdown(args, runs, meta):
    profile = PROFILES[args.profile]
    lines = [
        "# Scale: training and evaluation versus catalogue size (SYNTHETIC data)",
        "",
        f"Generated by {command(args)} on this machine ({os.cpu_count()} CPU cores, shared with other work: times "
        "are noisy, ratios come from one run).",
        "",
        f"Data: **synthetic**, shaped like KuaiRand-1K (not real data): {meta['users']:,} users, "
        f"{meta['interactions']:,} interactions, per-user length median {meta['median_length']:,.0f}, max "
        f"{meta['max_length']:,}; item ids drawn from {profile['items']:,} ids, and the same draws folded into "
        f"{profile['folded_items']:,}. RecMamba (its defaults, {json.dumps(profile['model'])}), seq2seq, "
        "`sampled_softmax` with 256 shared negatives, Adam, `sparse_item_embedding: auto`; full ranking in slices "
        "of items (`eval_slice_logits`). Peak RSS: the process's `VmHWM` over all phases (import, load, train, "
        "evaluate).",
        "",
        "| window | item ids (distinct) | sparse updates | steps trained / per epoch | s / step | epoch s | eval s "
        "| peak RSS GiB | load avg |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        evaluation = f"{run['eval_s']:.1f}" if run["eval_s"] is not None else "—"
        epoch = f"{run['epoch_s']:.1f}" + (" (extrapolated)" if run["steps"] < run["epoch_steps"] else "")
        lines.append(f"| {run['window']} | {run['catalogue']:,} ({run['distinct_items']:,}) | {run['sparse']} | "
                     f"{run['steps']:,} / {run['epoch_steps']:,} | {run['step_s']:.4f} | {epoch} | {evaluation} "
                     f"| {run['peak_gib']:.2f} | {run['load_average']} |")
    lines += ["", "Large catalogue / folded catalogue, same data and window:", "",
              "| window | epoch time | eval time | peak RSS |", "|---|---:|---:|---:|"]
    for large, folded in zip(runs[::2], runs[1::2]):
        evaluation = f"{large['eval_s'] / folded['eval_s']:.2f}x" if large["eval_s"] is not None else "—"
        lines.append(f"| {large['window']} | **{large['epoch_s'] / folded['epoch_s']:.2f}x** | {evaluation} | "
                     f"{large['peak_gib'] / folded['peak_gib']:.2f}x |")
    return "\n".join(lines) + "\n"


def memory_markdown(args, memory_runs):
    from recbole_mamba.ops.chunked_scan import MAX_BLOCK_ELEMENTS

    lines = ["# Memory at ordinary lengths: ML-100k (real data)", "",
             f"Generated by {command(args)}. RecMamba and SASRecSDPA, seq2seq, CE over all items, one epoch then one "
             "full-ranking evaluation of the test users, in a fresh process each; options "
             + json.dumps(PROFILES[args.profile]["ml100k"]) + ". Peak RSS per phase (`VmHWM`, reset between "
             "phases; wall time in brackets). Bounded by construction: the CE builds at most `ce_slice_logits` "
             f"logits at a time ({memory_runs[0]['ce_slice_logits'] * 4 / 2**20:.0f} MiB in float32, and as much "
             "again for the backward's slice); the scan keeps "
             f"its block buffers, at most 4 x {MAX_BLOCK_ELEMENTS:,} floats (32 MiB) plus four of one block's steps, "
             "from call to call. What grows with the batch: training activations (train_batch_size x L positions) "
             "and evaluation (eval_batch_size x L positions through the model at once; RecBole's default "
             "eval_batch_size is 4096).", "",
             "| model | " + " | ".join(phase["phase"] for phase in memory_runs[0]["phases"]) + " | peak |",
             "|---|" + "---:|" * (len(memory_runs[0]["phases"]) + 1)]
    for run in memory_runs:
        lines.append(f"| {run['label']} | " + " | ".join(f"{gib(phase['peak_rss'])} GiB ({phase['seconds']:.0f} s)"
                                                      for phase in run["phases"]) + f" | {run['peak_gib']:.2f} GiB |")
    return "\n".join(lines) + "\n"


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    labels = [f"{run['window']}\n{run['catalogue']:,} ids" for run in runs]
    colors = ["tab:red" if index % 2 == 0 else "tab:blue" for index in range(len(runs))]
    for axis, key, title in zip(axes, ("epoch_s", "eval_s", "peak_gib"),
                                ("one training epoch (s)", "full-ranking evaluation (s)", "peak RSS (GiB)")):
        axis.bar(range(len(runs)), [run[key] or 0 for run in runs], color=colors)
        axis.set_xticks(range(len(runs)), labels, fontsize=8)
        axis.set_title(title)
    figure.suptitle("RecMamba at KuaiRand-1K shape (SYNTHETIC data): large catalogue (red) vs folded (blue)")
    figure.tight_layout()
    save_figure(figure, path)


def main(argv=None):
    """Returns the synthetic runs and the memory runs (either empty when ``--part`` leaves it out)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", dest="profile", action="store_const", const="quick", default="full",
                        help="toy sizes (a smoke test)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--workdir", default=str(RESULTS_DIR / "tmp" / "scale"))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--part", choices=("all", "synthetic", "memory"), default="all",
                        help="synthetic: the catalogue comparison (scale.md/.png); memory: ML-100k (scale_memory.md)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    args.workdir = os.path.abspath(args.workdir)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    profile = PROFILES[args.profile]
    suffix = "" if args.profile == "full" else "_quick"
    args.out.mkdir(parents=True, exist_ok=True)
    runs, memory_runs = [], []
    if args.part in ("all", "synthetic"):
        runs, meta = synthetic_runs(args, profile)
        text = markdown(args, runs, meta)
        print(text)
        write_text(args.out / f"scale{suffix}.md", text)
        plot(runs, args.out / f"scale{suffix}.png")
    if args.part in ("all", "memory"):
        memory_runs = ml100k_runs(args, profile)
        text = memory_markdown(args, memory_runs)
        print(text)
        write_text(args.out / f"scale_memory{suffix}.md", text)
    return runs, memory_runs


if __name__ == "__main__":
    main()
