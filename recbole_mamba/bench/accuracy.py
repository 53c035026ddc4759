"""Accuracy with 95% intervals: RecMamba (also with ``history_copy``), SASRecSDPA and GRU4Rec against a
history-lookup rule and popularity.

    python -m recbole_mamba.bench.accuracy                        # default profile (see PROFILES)
    python -m recbole_mamba.bench.accuracy --profile reduced      # what a loaded 2-core machine manages
    python -m recbole_mamba.bench.accuracy --profile gpu          # more users, longer histories, L up to 5,120
    python -m recbole_mamba.bench.accuracy --profile smoke        # seconds (CI)

Datasets: ml-100k (real; 943 users, all tested) and a lifelong set generated at benchmark time into a temporary
folder by :mod:`recbole_mamba.data.synthetic_kuairand` (SYNTHETIC: interests that recur after long gaps, so the next
item is usually one the user watched long ago; see that module's docstring). Protocol, the same for every model:
RecBole's trainer, leave-one-out by time, full ranking, all-position (seq2seq) loss, the dataset's budget (windows
per batch, learning rate, epoch cap), early stopping on validation NDCG@10, test at the best validation epoch.

Statistics (:mod:`recbole_mamba.bench.confidence`): every test user's rank is captured from RecBole's evaluator
(:mod:`recbole_mamba.bench.per_user`); each metric gets a percentile-bootstrap 95% interval over users, and every
pair of models the paired difference with its interval (same resampled users). With several seeds a user's value
is its mean over seeds. The length curve trains RecMamba, RecMamba+copy (RecMamba with ``history_copy: True``) and
SASRecSDPA at each ``MAX_ITEM_LIST_LENGTH`` on the synthetic set (up to a profile's ``length_caps``;
models are compared at their longest length); the rules (:mod:`recbole_mamba.bench.reference_rules`) are evaluated
on the whole history (the history lookup also at every length). ``--parallel N`` runs N trainings at a time;
``--runs FILE`` keeps every run's per-user ranks (updated as runs finish) and, when FILE exists, trains only the
runs missing from it (an interrupted benchmark resumes; a finished one only makes its tables again). Writes
``results/accuracy.md`` and ``results/accuracy.png`` (the smoke and gpu profiles: ``accuracy_<profile>.*``).
"""

import argparse
import concurrent.futures
import itertools
import math
import multiprocessing
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

from recbole_mamba.atomic_file import write_atomic
from recbole_mamba.bench import confidence
from recbole_mamba.bench.results import RESULTS_DIR, label_measured, save_figure, write_text

KS = (10, 20)
METRICS = [f"{name}@{k}" for k in KS for name in ("hit", "ndcg", "mrr")]
MODELS = ["RecMamba", "RecMamba+copy", "SASRecSDPA", "GRU4RecAllPositions"]  # default --models
CURVE_MODELS = ["RecMamba", "RecMamba+copy", "RecMamba+retrieval", "SASRecSDPA"]  # trained at every length
VARIANTS = {  # label -> (model, its options); a label is trained when --models names it
    "RecMamba+copy": ("RecMamba", {"history_copy": True}),
    "RecMamba+retrieval": ("RecMamba", {"history_retrieval": True}),
    "SASRecSDPA+copy": ("SASRecSDPA", {"history_copy": True}),
}
RULES = ["HistoryLookup", "MostPopular"]
SYNTHETIC = "lifelong-synthetic"
SHARED = {  # identical for every model: architecture sizes at RecBole-like defaults, protocol, evaluation
    "train_mode": "seq2seq", "hidden_size": 64, "embedding_size": 64, "n_layers": 2, "n_heads": 2,
    "inner_size": 256, "topk": list(KS), "metrics": ["Hit", "NDCG", "MRR"], "valid_metric": "NDCG@10",
    "eval_step": 1, "show_progress": False, "eval_batch_size": 256,
}
PROFILES = {
    # A 2-core CPU, two runs at a time: SASRecSDPA and GRU4Rec stop at L = 512, where histories of 150-900 items
    # are mostly covered (an epoch of SASRecSDPA at 2048 takes about 15 minutes here; the gpu profile has it).
    "default": {
        "seeds": [2024],
        "synthetic": {"users": 1000, "items": 1000, "clusters": 20, "lifelong_length": (150, 900)},
        "lengths": [50, 200, 512, 2048],
        "length_caps": {"SASRecSDPA": 512, "GRU4RecAllPositions": 512},
        "budget": {"ml-100k": {"MAX_ITEM_LIST_LENGTH": 200, "train_batch_size": 32, "learning_rate": 0.003,
                               "epochs": 10, "stopping_step": 2},
                   SYNTHETIC: {"train_batch_size": 16, "learning_rate": 0.003, "epochs": 10, "stopping_step": 2}},
    },
    # What a 2-core machine loaded ~4x allows: short synthetic histories (so L = 512 and 2048 add nothing over
    # the whole history) and epoch caps of 6.
    "reduced": {
        "seeds": [2024],
        "synthetic": {"users": 1000, "items": 1000, "clusters": 20, "lifelong_length": (80, 240)},
        "lengths": [50, 200],
        "budget": {"ml-100k": {"MAX_ITEM_LIST_LENGTH": 200, "train_batch_size": 32, "learning_rate": 0.003,
                               "epochs": 6, "stopping_step": 2},
                   SYNTHETIC: {"train_batch_size": 16, "learning_rate": 0.003, "epochs": 6, "stopping_step": 2}},
    },
    "gpu": {
        "seeds": [2024, 2025, 2026],
        "synthetic": {"users": 3000, "items": 3000, "clusters": 40, "lifelong_length": (1000, 6000)},
        "lengths": [50, 200, 512, 2048, 5120],
        "budget": {"ml-100k": {"MAX_ITEM_LIST_LENGTH": 200, "train_batch_size": 128, "learning_rate": 0.002,
                               "epochs": 100, "stopping_step": 10},
                   SYNTHETIC: {"train_batch_size": 32, "learning_rate": 0.002, "epochs": 100, "stopping_step": 10}},
    },
    "smoke": {
        "seeds": [1],
        "synthetic": {"users": 40, "items": 120, "clusters": 4, "lifelong_length": (30, 60)},
        "lengths": [8, 16],
        "budget": {"ml-100k": {"MAX_ITEM_LIST_LENGTH": 20, "train_batch_size": 512, "epochs": 1,
                               "user_inter_num_interval": "[20,26)", "hidden_size": 8, "embedding_size": 8,
                               "inner_size": 16, "n_layers": 1, "n_heads": 1},
                   SYNTHETIC: {"train_batch_size": 64, "epochs": 1, "hidden_size": 8, "embedding_size": 8,
                               "inner_size": 16, "n_layers": 1, "n_heads": 1}},
    },
}
# Synthetic generator options shared by all profiles: short one-interest segments and few interests, so that
# interests recur within a few hundred items (every user has one history length range, none short or very long).
GENERATOR = {"short_fraction": 0.0, "long_fraction": 0.0, "interests": (3, 6), "favourites": (10, 25),
             "segment_length": (5, 15, 40)}
WHOLE_HISTORY = 10_000  # rules read up to this many items: every user's whole history


def make_synthetic(data_path, options, seed):
    """Write ``data_path/<SYNTHETIC>/`` (raw KuaiRand-format logs beside ``data_path``, then the converter)."""
    from recbole_mamba.data.kuairand import convert
    from recbole_mamba.data.synthetic_kuairand import SyntheticConfig, generate

    config = SyntheticConfig(seed=seed, **GENERATOR, **options)
    raw = Path(data_path).parent / "raw"
    stats = generate(raw, config)
    convert(raw, data_path, name=SYNTHETIC)
    return {**stats, "description": config.describe()}


def threads_per_run(parallel):
    """Torch threads for each of ``parallel`` concurrent runs: the CPUs shared out."""
    return max(1, (os.cpu_count() or 1) // parallel)


def model_and_options(label):
    """The model a label trains and the options it adds (:data:`VARIANTS`; any other label: itself, none)."""
    return VARIANTS.get(label, (label, {}))


def train_once(job):
    """One RecBole run (a dict: model, dataset, options, workdir): test users' ranks, seconds, validations."""
    import torch

    from recbole_mamba.bench import reference_rules
    from recbole_mamba.bench.per_user import captured_evaluations
    from recbole_mamba.quick_start import run

    torch.set_num_threads(job["threads"])
    os.chdir(job["workdir"])  # RecBole writes ./log and ./log_tensorboard
    model = getattr(reference_rules, job["model"], model_and_options(job["model"])[0])
    started = time.perf_counter()
    # A folder of its own: RecBole names checkpoints by model and second, so concurrent runs would share one.
    saved = tempfile.mkdtemp(prefix="saved-", dir=job["workdir"])
    with captured_evaluations() as evaluations:
        result = run(model=model, dataset=job["dataset"], config_dict={**job["options"], "checkpoint_dir": saved})
    users, ranks = evaluations[-1]
    order = np.argsort(users, kind="stable")
    return {**job, "users": users[order], "ranks": ranks[order], "seconds": time.perf_counter() - started,
            "validations": len(evaluations) - 1, "test_result": dict(result["test_result"])}


def model_lengths(args, model):
    """The synthetic set's lengths that ``model`` trains at: the profile's, up to its ``length_caps`` entry."""
    cap = args.length_caps.get(model_and_options(model)[0], math.inf)  # a variant is capped like its model
    return [length for length in args.lengths if length <= cap]


def longest(args, dataset, model):
    """The length at which ``model`` is compared with the others on ``dataset``."""
    if model in RULES:
        return WHOLE_HISTORY
    if dataset == SYNTHETIC:
        return model_lengths(args, model)[-1]
    return args.budget[dataset]["MAX_ITEM_LIST_LENGTH"]


def plan(args, workdir):
    """Every run of the profile, each once: (dataset, model, L, seed) -> job."""
    jobs = {}

    def add(dataset, model, length, seed):
        budget = args.budget[dataset]
        options = {**SHARED, **budget, "seed": seed, "MAX_ITEM_LIST_LENGTH": length}
        if dataset == SYNTHETIC:
            options["data_path"] = str(workdir / "dataset")
        if model in RULES:
            options.update(epochs=1, stopping_step=1)
        options.update(model_and_options(model)[1])
        jobs[(dataset, model, length, seed)] = {"model": model, "dataset": dataset, "options": options,
                                                "workdir": str(workdir), "threads": args.threads}

    for seed in args.seeds:
        ml_length = args.budget["ml-100k"]["MAX_ITEM_LIST_LENGTH"]
        for model in args.models:
            add("ml-100k", model, ml_length, seed)
        for model in args.models:
            for length in model_lengths(args, model) if model in CURVE_MODELS else [longest(args, SYNTHETIC, model)]:
                add(SYNTHETIC, model, length, seed)
    for rule in RULES:  # deterministic: one seed; the history lookup also at every length
        for dataset, length in [("ml-100k", WHOLE_HISTORY), (SYNTHETIC, WHOLE_HISTORY)] + [
                (SYNTHETIC, length) for length in args.lengths if rule == "HistoryLookup"]:
            add(dataset, rule, length, args.seeds[0])

    def priority(key):  # cheap rules, then the comparison's ends, so an interrupted run has the essentials
        dataset, model, length, seed = key
        essential = model in RULES or length in (args.lengths[0], longest(args, dataset, model)) or dataset == "ml-100k"
        return (model not in RULES, not essential, seed != args.seeds[0], model not in CURVE_MODELS)

    return dict(sorted(jobs.items(), key=lambda item: priority(item[0])))


def run_jobs(jobs, parallel, on_result=lambda done: None):
    """Results of every job, ``parallel`` processes at a time; progress printed (and ``on_result(results)`` called)
    as runs finish."""
    done = {}
    if parallel == 1:
        outcomes = ((key, train_once(job)) for key, job in jobs.items())
    else:
        pool = concurrent.futures.ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"))
        futures = {pool.submit(train_once, job): key for key, job in jobs.items()}
        outcomes = ((futures[future], future.result()) for future in concurrent.futures.as_completed(futures))
    for key, outcome in outcomes:
        done[key] = outcome
        hit = confidence.per_user_metrics(outcome["ranks"], KS)["hit@10"].mean()
        print(f"[{len(done)}/{len(jobs)}] {key[0]} {key[1]} L={key[2]} seed={key[3]}: hit@10={hit:.4f} "
              f"({outcome['seconds']:.0f} s, {outcome['validations']} validations)", flush=True)
        on_result(done)
    if parallel > 1:
        pool.shutdown()
    return done


def save_runs(path, synthetic_stats, done):
    """Pickle the synthetic set's statistics and the finished runs, atomically."""
    write_atomic(path, lambda handle: pickle.dump((synthetic_stats, done), handle), binary=True)


def load_runs(path):
    """What :func:`save_runs` wrote."""
    with open(path, "rb") as handle:
        return pickle.load(handle)


def user_values(done, dataset, model, length, seeds):
    """Per-user metric values (mean over ``seeds``), users in id order."""
    runs = [done[(dataset, model, length, seed)] for seed in seeds if (dataset, model, length, seed) in done]
    users = runs[0]["users"]
    assert all(np.array_equal(run["users"], users) for run in runs), "runs tested different users"
    values = [confidence.per_user_metrics(run["ranks"], KS) for run in runs]
    return {name: np.mean([value[name] for value in values], axis=0) for name in METRICS}, users, runs


def summarise(done, args):
    """Rows of the comparison (per dataset), the curve (per model and length), and the paired differences."""
    entries = {}
    for dataset, model, length, _ in done:
        seeds = [args.seeds[0]] if model in RULES else args.seeds
        entries.setdefault((dataset, model, length), user_values(done, dataset, model, length, seeds))
    summary = {"rows": {}, "curve": {}, "pairs": {}}
    for dataset in ("ml-100k", SYNTHETIC):
        first = next(users for (d, _, _), (_, users, _) in entries.items() if d == dataset)
        indices = confidence.resample_indices(len(first), seed=args.seeds[0])
        keys = sorted(key for key in entries if key[0] == dataset)
        for key in keys:
            values, users, runs = entries[key]
            assert np.array_equal(users, first), f"{key} tested other users"
            row = {name: confidence.interval(values[name], indices) for name in METRICS}
            row["seconds"] = float(np.mean([run["seconds"] for run in runs]))
            row["validations"] = float(np.mean([run["validations"] for run in runs]))
            row["users"] = len(users)
            target = summary["curve"] if dataset == SYNTHETIC else summary["rows"]
            target.setdefault(dataset, {})[key[1:]] = row
        compared = [key for key in keys if key[2] == longest(args, dataset, key[1])]
        for a, b in itertools.combinations(compared, 2):
            summary["pairs"][(a, b)] = {name: confidence.paired_difference(entries[a][0][name], entries[b][0][name],
                                                                           indices) for name in ("hit@10", "ndcg@10")}
        for model in CURVE_MODELS:  # the length effect: longest against shortest context, same model
            long, short = (dataset, model, longest(args, dataset, model)), (dataset, model, args.lengths[0])
            if dataset == SYNTHETIC and long in entries and short in entries and long != short:
                summary["pairs"][(long, short)] = {
                    name: confidence.paired_difference(entries[long][0][name], entries[short][0][name],
                                                       indices) for name in ("hit@10", "ndcg@10")}
    return summary


def cell(value):
    mean, low, high = value
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]"


def length_name(length):
    return "whole history" if length == WHOLE_HISTORY else str(length)


def targets(summary, args, synthetic_stats):
    """The issue's targets, met or missed, for RecMamba and each of its variants, as markdown list items (only
    those whose runs exist)."""
    curve, pairs, lines = summary["curve"].get(SYNTHETIC, {}), summary["pairs"], []
    shortest = args.lengths[0]
    rule = curve.get(("HistoryLookup", WHOLE_HISTORY))
    topic_rule = synthetic_stats["hr10_long_last"]
    for name in [model for model in args.models if model.startswith("RecMamba")]:
        length = longest(args, SYNTHETIC, name)
        gain = pairs.get(((SYNTHETIC, name, length), (SYNTHETIC, name, shortest)))
        if gain:
            met = "met" if gain["hit@10"][1] > 0 else "missed"
            lines.append(f"- {name} HR@10 at L = {length} minus L = {shortest} (SYNTHETIC): "
                         f"{cell(gain['hit@10'])}: {met} (the interval must exclude 0).")
        model = curve.get((name, length))
        if rule and model:
            share = model["hit@10"][0] / rule["hit@10"][0] if rule["hit@10"][0] else float("inf")
            lines.append(f"- {name} HR@10 at L = {length} / HistoryLookup (whole history) HR@10 (SYNTHETIC): "
                         f"{share:.0%}: {'met' if share >= 0.6 else 'missed'} (target >= 60%).")
        if model:
            share = model["hit@10"][0] / topic_rule
            lines.append(f"- {name} HR@10 at L = {length} / the generator's topic-aware rule ({topic_rule:.3f}, "
                         f"below): {share:.0%}: {'met' if share >= 0.6 else 'missed'} (target >= 60%).")
        for dataset in ("ml-100k", SYNTHETIC):
            ours, theirs = longest(args, dataset, name), longest(args, dataset, "SASRecSDPA")
            pair = pairs.get(((dataset, name, ours), (dataset, "SASRecSDPA", theirs)))
            if pair:
                verdict = confidence.verdict(pair["ndcg@10"])
                lines.append(f"- {name} (L = {ours}) minus SASRecSDPA (L = {theirs}) NDCG@10 on {dataset}: "
                             f"{cell(pair['ndcg@10'])}, {verdict}: {'missed' if verdict == 'lower' else 'met'} "
                             "(target: within the interval or above).")
    return lines


def markdown(summary, args, synthetic_stats):
    comparison = {**summary["rows"], SYNTHETIC: {key: row for key, row in summary["curve"].get(SYNTHETIC, {}).items()
                                                 if key[1] == longest(args, SYNTHETIC, key[0])}}
    lines = [
        f"# Accuracy (`python -m recbole_mamba.bench.accuracy --profile {args.profile}"
        + ("" if args.models == MODELS else f" --models {' '.join(args.models)}") + "`)", "",
        f"Profile `{args.profile}`; seeds {args.seeds} (the rules are deterministic). Test metrics at the best "
        "validation epoch (NDCG@10, early stopping), full ranking over all items, leave-one-out by time; every value "
        f"is the mean over test users with its percentile-bootstrap 95% interval ({confidence.RESAMPLES} resamples "
        "of users). Same all-position (seq2seq) loss and budget for every model; hidden size 64; SASRecSDPA = "
        "RecBole's SASRec (2 layers, 2 heads) with fused attention; GRU4RecAllPositions = RecBole's GRU4Rec. "
        "HistoryLookup = the user's most frequent earlier items (ties: most recent), MostPopular = the most "
        "frequent training targets; neither is trained. Variants: " + "; ".join(
            f"{label} = {model} with {options}" for label, (model, options) in VARIANTS.items()
            if label in args.models) + ". Budgets: "
        + "; ".join(f"{name}: {opts}" for name, opts in args.budget.items()) + "."
        + (f" Longest length trained on {SYNTHETIC} (compute on this profile's machine): {args.length_caps}; each "
           "model is compared with the others at its longest length." if args.length_caps else ""), "",
        f"**{SYNTHETIC} is SYNTHETIC**, generated at benchmark time (not bundled): {synthetic_stats['description']}; "
        f"{synthetic_stats['users']} users, {synthetic_stats['items']} items, {synthetic_stats['interactions']:,} "
        f"interactions, user length median {synthetic_stats['user_length_median']:.0f} (max "
        f"{synthetic_stats['user_length_max']}); the last item is among the previous 50 items for "
        f"{synthetic_stats['last_in_last_50']:.1%} of users, anywhere in the history for "
        f"{synthetic_stats['last_in_history']:.1%}.", "",
    ]
    for dataset, rows in comparison.items():
        kind = "SYNTHETIC data" if dataset == SYNTHETIC else "real data"
        users = next(iter(rows.values()))["users"]
        lines += [f"## {dataset} ({kind}; {users} test users)", "",
                  "| model | L | " + " | ".join(METRICS) + " | validations | train+eval s |",
                  "|---|---:|" + "---:|" * (len(METRICS) + 2)]
        lines += [f"| {model} | {length_name(length)} | " + " | ".join(cell(row[name]) for name in METRICS)
                  + f" | {row['validations']:.0f} | {row['seconds']:.0f} |" for (model, length), row in rows.items()]
        lines.append("")
    lines += ["## Paired differences (row model minus column model; 95% interval over the same users)", "",
              "| dataset | A | B | HR@10 A - B | NDCG@10 A - B | NDCG@10 |", "|---|---|---|---:|---:|---|"]
    for (a, b), diff in summary["pairs"].items():
        lines.append(f"| {a[0]}{' (SYNTHETIC)' if a[0] == SYNTHETIC else ''} | {a[1]} L={length_name(a[2])} | "
                     f"{b[1]} L={length_name(b[2])} | {cell(diff['hit@10'])} | {cell(diff['ndcg@10'])} | "
                     f"{confidence.verdict(diff['ndcg@10'])} |")
    lines += ["", "## Targets (issue 13)", ""] + targets(summary, args, synthetic_stats) + [
        "", f"Topic-aware rules of the generator (they know every item's true topic; each user's last item, no "
        f"interval): the topic's most popular items outside the last 50 items HR@10 "
        f"{synthetic_stats['hr10_short_last']:.3f}; the user's own most frequent items of the topic, whole history, "
        f"{synthetic_stats['hr10_long_last']:.3f}. HistoryLookup above is topic-blind."]
    curve = summary["curve"].get(SYNTHETIC, {})
    lines += ["", f"## HR@10 and NDCG@10 versus MAX_ITEM_LIST_LENGTH on {SYNTHETIC} (SYNTHETIC data)", "",
              "| model | L | HR@10 | NDCG@10 | validations | train+eval s |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {model} | {length_name(length)} | {cell(row['hit@10'])} | {cell(row['ndcg@10'])} | "
              f"{row['validations']:.0f} | {row['seconds']:.0f} |" for (model, length), row in curve.items()]
    return "\n".join(lines) + "\n"


def plot(summary, args, path, synthetic_stats):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    rows = summary["rows"].get("ml-100k", {})
    names = [f"{model}" for model, _ in rows]
    for offset, metric in enumerate(["hit@10", "ndcg@10"]):
        values = [row[metric] for row in rows.values()]
        axes[0].bar([i + 0.38 * offset for i in range(len(names))], [v[0] for v in values], width=0.36,
                    yerr=[[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]], capsize=3, label=metric)
    axes[0].set_xticks([i + 0.19 for i in range(len(names))], names, fontsize=7, rotation=15)
    axes[0].set_title("ml-100k (real), 95% intervals")
    axes[0].legend()
    curve = summary["curve"].get(SYNTHETIC, {})
    for axis, metric in zip(axes[1:], ["hit@10", "ndcg@10"]):
        for model in list(args.models) + ["HistoryLookup"]:  # a model trained at one length: a point
            points = sorted((length, row[metric]) for (name, length), row in curve.items()
                            if name == model and length != WHOLE_HISTORY)
            if points:
                lengths, values = zip(*points)
                axis.errorbar(lengths, [v[0] for v in values], yerr=[[v[0] - v[1] for v in values],
                              [v[2] - v[0] for v in values]], marker="o" if len(points) > 1 else "s", capsize=3,
                              label=model, linestyle="--" if model in RULES else "-")
        if metric == "hit@10":
            axis.axhline(synthetic_stats["hr10_long_last"], color="black", linestyle="-.",
                         label="topic-aware rule (knows the topics)")
        for rule, color in zip(RULES, ("gray", "brown")):
            whole = curve.get((rule, WHOLE_HISTORY))
            if whole:
                axis.axhline(whole[metric][0], color=color, linestyle=":", label=f"{rule}, whole history")
                axis.axhspan(whole[metric][1], whole[metric][2], color=color, alpha=0.15)
        axis.set(xscale="log", xlabel="MAX_ITEM_LIST_LENGTH", ylabel=metric,
                 title=f"{metric} vs length, {SYNTHETIC} (SYNTHETIC)")
        label_measured(axis, args.lengths)
        axis.set_ylim(top=axis.get_ylim()[1] * 1.4)  # room for the legend above the curves
        axis.legend(fontsize=7, loc="upper left", ncol=2)
    figure.tight_layout()
    save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time, each in its own process")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--runs", type=Path, help="pickle of every run's per-user ranks, written as runs finish; "
                                                  "when it exists, only the runs missing from it are trained")
    args = parser.parse_args(argv)
    args.seeds, args.lengths, args.budget = (PROFILES[args.profile][key] for key in ("seeds", "lengths", "budget"))
    args.length_caps = PROFILES[args.profile].get("length_caps", {})
    args.runs = args.runs and args.runs.resolve()  # runs change the working directory
    args.threads = threads_per_run(args.parallel)
    earlier = load_runs(args.runs)[1] if args.runs and args.runs.exists() else {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)  # the synthetic set is deterministic: the same as for the earlier runs
        synthetic_stats = make_synthetic(workdir / "dataset", PROFILES[args.profile]["synthetic"], seed=args.seeds[0])
        jobs = {key: job for key, job in plan(args, workdir).items() if key not in earlier}
        previous = os.getcwd()
        try:
            done = {**earlier, **run_jobs(jobs, args.parallel, lambda new: args.runs and save_runs(
                args.runs, synthetic_stats, {**earlier, **new}))}
        finally:
            os.chdir(previous)
    summary = summarise(done, args)
    table = markdown(summary, args, synthetic_stats)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "accuracy" if args.profile in ("default", "reduced") else f"accuracy_{args.profile}"
    write_text(args.out / f"{name}.md", table)
    plot(summary, args, args.out / f"{name}.png", synthetic_stats)
    print(f"wrote {args.out / (name + '.md')} and {args.out / (name + '.png')}")
    return summary, done


if __name__ == "__main__":
    main()
