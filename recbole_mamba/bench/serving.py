"""Serving latency: one new event folded in with RecMamba's ``step`` versus recomputing the user's whole history.

    python -m recbole_mamba.bench.serving        # histories of 100 ... 50,000 events, batch 1 and 256 (minutes)
    python -m recbole_mamba.bench.serving --lengths 8 32 --batches 1 2 --items 50 --repeats 1   # a smoke run

For each batch size B (users updated together) and history length L: ``step`` is one ``RecMamba.step`` (one new
item per user) from states prefilled over L events; ``recompute`` is the forward over the L + 1 events, as a model
without recurrent inference must (RecMamba, and SASRecSDPA for comparison), in slabs of at most ``--slab-positions``
users x events so that memory stays bounded, both on ``--threads`` threads (default 1: one request's latency,
and steadier on a shared machine). Both give the user representations after the new event (scoring the
items is the same for both and is left out); their max abs difference is reported. Latency: median of
``--repeats`` calls after one warm-up, or the single call when it takes over a second; eval mode, no gradients. A
recompute expected to take over ``--budget`` seconds (from the previous length, linear in L for RecMamba, quadratic
for attention) is skipped and marked so. The steps' states are prefilled over one slab of distinct users, tiled to
B (a step's cost does not depend on the state's values). Writes ``results/serving.md`` and ``serving.png``.
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from recbole_mamba.bench.results import RESULTS_DIR, label_measured, publish, save_figure
from recbole_mamba.progress import step as progress_step

MODELS = {  # name -> (options, exponent of L in the recompute time); hidden size 64 everywhere
    "RecMamba": ({}, 1),
    "SASRecSDPA": ({"n_layers": 2, "n_heads": 2, "inner_size": 256}, 2),
}
RECURRENT = "RecMamba"


def build_model(name, items, max_length, device):
    """``name`` with its yaml defaults (hidden 64), random weights, in eval mode on ``device``."""
    from recbole_mamba.data.item_count import ItemCount
    from recbole_mamba.quick_start import Config, get_model

    options = {"hidden_size": 64, "MAX_ITEM_LIST_LENGTH": max_length, "train_neg_sample_args": None,
               "loss_type": "CE", "device": device, "seed": 0, **MODELS[name][0]}
    config = Config(model=name, dataset="synthetic-benchmark", config_dict=options)
    torch.manual_seed(0)
    return get_model(name)(config, ItemCount(items)).to(device).eval()


def timed(function, repeats):
    """(median seconds of ``function()``, its last result): one warm-up and ``repeats`` calls, or the one call when
    it takes over a second."""
    start = time.perf_counter()
    result = function()
    first = time.perf_counter() - start
    if first > 1.0:
        return first, result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _slabs(batch, length, slab_positions):
    rows = max(1, slab_positions // length)
    return [slice(start, min(start + rows, batch)) for start in range(0, batch, rows)]


def recompute(model, history, slab_positions):
    """Representations after the whole ``history`` (users, events), slab by slab."""
    users, length = history.shape
    lengths = torch.full((users,), length, device=history.device)
    return torch.cat([model.forward(history[rows], lengths[rows]) for rows in _slabs(users, length, slab_positions)])


def measure(model, name, batch, length, args, estimate):
    """One row: step and recompute latencies (seconds) for ``batch`` users with ``length`` events."""
    generator = torch.Generator().manual_seed(length)
    distinct = min(batch, max(1, args.slab_positions // length))
    history = torch.randint(1, args.items, (distinct, length + 1), generator=generator).to(args.device)
    history = history.repeat((batch + distinct - 1) // distinct, 1)[:batch]
    row = {"model": name, "batch": batch, "length": length}
    step_output = None
    if name == RECURRENT:
        lengths = torch.full((distinct,), length, device=args.device)
        _, state = model.prefill(history[:distinct, :length], lengths)
        state = {key: value.repeat((batch + distinct - 1) // distinct, *[1] * (value.dim() - 1))[:batch]
                 for key, value in state.items()}
        row["step"], (step_output, _) = timed(lambda: model.step(state, history[:, length]), args.step_repeats)
    if estimate is not None and estimate > args.budget:
        row["skipped"] = f"skipped: ~{estimate:.0f} s expected > {args.budget:.0f} s budget"
        row["estimate"] = estimate
        return row, None
    with torch.no_grad():
        row["recompute"], output = timed(lambda: recompute(model, history, args.slab_positions), args.repeats)
    if step_output is not None:
        row["difference"] = (step_output - output).abs().max().item()
    return row, output


def describe(model):
    """The model's shape, in words."""
    if hasattr(model, "block_style"):
        return f"{model.block_style} block, {model.num_layers} layer(s), d_state {model.d_state}, expand {model.expand}"
    return f"{model.n_layers} layers, {model.n_heads} heads, inner {model.inner_size}"


def run(args):
    """The rows of every (model, batch, length), and each model's shape in words."""
    rows, shapes = [], {}
    for name in args.models:
        model = build_model(name, args.items, max(args.lengths) + 1, args.device)
        shapes[name] = describe(model)
        exponent = MODELS[name][1]
        for batch in args.batches:
            previous = None  # (length, recompute seconds) of the last measured length
            for length in sorted(args.lengths):
                estimate = None if previous is None else previous[1] * (length / previous[0]) ** exponent
                with progress_step(f"{name} batch {batch} L={length}"):
                    row, _ = measure(model, name, batch, length, args, estimate)
                rows.append(row)
                if "recompute" in row:
                    previous = (length, row["recompute"])
    return rows, shapes


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"


def summary(rows):
    """Lines on the targets: step latency flat in L (within 1.5x from 100 to 10,000 events), and one step >= 100x
    faster than recomputing at 10,000 events."""
    lines = []
    for batch in sorted({r["batch"] for r in rows}):
        steps = {r["length"]: r for r in rows if r["model"] == RECURRENT and r["batch"] == batch}
        if not steps:
            continue
        lengths = [length for length in steps if 100 <= length <= 10_000] or list(steps)
        times = [steps[length]["step"] for length in lengths]
        text = (f"- batch {batch}: step latency max / min over L = {min(lengths):,} ... {max(lengths):,}: "
                f"{max(times) / min(times):.2f}x (target <= 1.5x from 100 to 10,000)")
        at = steps.get(10_000, {})
        if "recompute" in at:
            text += (f"; at 10,000 events one step is {at['recompute'] / at['step']:,.0f}x faster than recomputing "
                     "(target >= 100x)")
        elif "estimate" in at:
            text += (f"; at 10,000 events recomputing (skipped) would take ~{at['estimate']:.0f} s, "
                     f"~{at['estimate'] / at['step']:,.0f}x a step (target >= 100x)")
        lines.append(text + ".")
    return lines


def markdown(rows, shapes, args):
    machine = (torch.cuda.get_device_name() if args.device == "cuda"
               else f"{platform.machine()} CPU ({os.cpu_count()} cores, load average {os.getloadavg()[1]:.1f} over the "
                    f"last 5 minutes), {torch.get_num_threads()} thread(s)")
    models = "; ".join(f"{name}: {shape}" for name, shape in shapes.items())
    lines = [
        f"Per-event update latency, {machine}, torch {torch.__version__}, float32, hidden 64, {args.items} items "
        f"({models}).",
        "`step`: `RecMamba.step`, one new item per user; `recompute`: the forward over the L + 1 events (slabs of "
        f"<= {args.slab_positions:,} user-events). ms = median of {args.repeats} (recompute) / {args.step_repeats} "
        "(step) calls after a warm-up, or one call when it takes > 1 s. max abs diff: step vs recompute "
        "representations.",
        "",
        "| model | batch | history L | step ms | recompute ms | recompute / step | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        recomputed = r.get("skipped") or _ms(r.get("recompute"))
        ratio = f"{r['recompute'] / r['step']:,.0f}x" if "recompute" in r and "step" in r else "-"
        difference = f"{r['difference']:.1e}" if "difference" in r else "-"
        lines.append(f"| {r['model']} | {r['batch']} | {r['length']:,} | {_ms(r.get('step'))} | {recomputed} | "
                     f"{ratio} | {difference} |")
    return "\n".join(lines + ["", *summary(rows)]) + "\n"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for model in dict.fromkeys(r["model"] for r in rows):
        for batch in sorted({r["batch"] for r in rows}):
            for kind, marker in (("step", "o-"), ("recompute", "s--")):
                points = [(r["length"], r[kind]) for r in rows
                          if r["model"] == model and r["batch"] == batch and kind in r]
                if points:
                    axis.plot(*zip(*points), marker, label=f"{model} {kind}, batch {batch}")
    axis.set(xscale="log", yscale="log", xlabel="history length L (events)", ylabel="latency per event update, s",
             title="Serving: one new event per user")
    label_measured(axis, [r["length"] for r in rows])
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 10_000, 50_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed recompute calls (median)")
    parser.add_argument("--step-repeats", type=int, default=50, help="timed step calls (median)")
    parser.add_argument("--budget", type=float, default=180.0, help="skip recomputes expected to take longer, s")
    parser.add_argument("--slab-positions", type=int, default=262_144, help="users x events per recompute slab")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for serving.md and serving.png")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rows, shapes = run(args)
        table = markdown(rows, shapes, args)
    finally:
        torch.set_num_threads(threads)
    publish(args.out, "serving", table, lambda path: plot(rows, path))
    return rows


if __name__ == "__main__":
    main()
