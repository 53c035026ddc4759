"""Training-step efficiency: RecMamba against RecBole's sequential models, versus sequence length.

    python -m recbole_mamba.bench.efficiency                 # CPU profile: a few minutes on 2 cores
    python -m recbole_mamba.bench.efficiency --profile gpu   # GPU profile (see bench/gpu_profile.sh)

One training step = forward + backward + Adam update of RecBole's ``calculate_loss`` (CE over all items at the
last position, as RecBole trains these models) on random full-length sequences. Each (model, length, variant) runs
in its own subprocess, so that peak memory is its own: on CPU the growth of peak RSS over the steps (VmHWM reset
through /proc/self/clear_refs), on GPU the CUDA allocator's peak. Time is the median of ``--repeats`` steps after
warm-up. Ratios are to RecBole's SASRec in the same run. Writes ``results/efficiency_<profile>.md`` and ``.png``.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from recbole_mamba.bench.results import RESULTS_DIR, label_measured, publish, save_figure
from recbole_mamba.bench.rss import current_rss_bytes, peak_rss_bytes, reset_peak_rss

BASELINE = "SASRec"
MODEL_OPTIONS = {  # hidden size 64 everywhere; attention models 2 layers x 2 heads, inner 256 (RecBole defaults)
    "RecMamba": {},
    "SASRec": {"n_layers": 2, "n_heads": 2, "inner_size": 256},
    "SASRecSDPA": {"n_layers": 2, "n_heads": 2, "inner_size": 256},
    "GRU4Rec": {"embedding_size": 64, "num_layers": 1},
    "BERT4Rec": {"n_layers": 2, "n_heads": 2, "inner_size": 256},
}
PROFILES = {
    "cpu": {"lengths": [256, 512, 1024, 2048], "batch": 8, "repeats": 3, "variants": ["fp32"], "timeout": 300},
    "gpu": {"lengths": [512, 1024, 2048, 4096, 8192], "batch": 128, "repeats": 10, "variants": ["fp32", "bf16"],
            "timeout": 120},
}


def run_worker(spec):
    """Measure one configuration in this process; returns a dict (time_s, memory_gib) or an error."""
    import torch
    from recbole.data.interaction import Interaction
    from recbole.data.transform import construct_transform

    from recbole_mamba.data.item_count import ItemCount
    from recbole_mamba.quick_start import Config, get_model

    device = torch.device(spec["device"])
    options = {"hidden_size": 64, "MAX_ITEM_LIST_LENGTH": spec["length"], "train_neg_sample_args": None,
               "loss_type": "CE", "device": spec["device"], "use_gpu": device.type == "cuda", "seed": 0,
               **MODEL_OPTIONS[spec["model"]], **spec.get("options", {})}
    config = Config(model=spec["model"], dataset="synthetic-benchmark", config_dict=options)
    config["device"] = device
    item_count = ItemCount(spec["items"])
    transform = construct_transform(config)  # e.g. BERT4Rec's masking: part of the data pipeline, done once here
    torch.manual_seed(0)
    model = get_model(spec["model"])(config, item_count).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch, length = spec["batch"], spec["length"]
    interaction = transform(item_count, Interaction({
        model.ITEM_SEQ: torch.randint(1, spec["items"], (batch, length)),
        model.ITEM_SEQ_LEN: torch.full((batch,), length),
        model.POS_ITEM_ID: torch.randint(1, spec["items"], (batch,)),
    })).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=spec["variant"] == "bf16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model.calculate_loss(interaction)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":  # memory: everything the steps add to the model's parameters (optimizer state too)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = current_rss_bytes()
        reset_peak_rss()
    for _ in range(spec["warmup"]):
        step()
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else peak_rss_bytes()
    return {"time_s": statistics.median(times), "memory_gib": (peak - base) / 2**30}


def measure(spec, timeout):
    """Run ``run_worker(spec)`` in a fresh interpreter; failures (OOM, timeout) become an ``error`` entry."""
    command = [sys.executable, "-m", "recbole_mamba.bench.efficiency", "--worker", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timeout > {timeout}s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]
        return {**spec, "error": "OOM" if "out of memory" in done.stderr.lower() else tail[:80]}
    return {**spec, **json.loads(done.stdout.strip().splitlines()[-1])}


def label(row):
    parts = [row["model"]]
    if row.get("options", {}).get("mamba_backend"):
        parts.append(row["options"]["mamba_backend"])
    if row["variant"] != "fp32":
        parts.append(row["variant"])
    return " ".join(parts)


def markdown(rows, args, machine):
    baseline = {(r["length"], r["variant"]): r for r in rows if r["model"] == BASELINE and "error" not in r}
    lines = [
        f"Training step (forward + backward + Adam), batch {args.batch}, hidden 64, {args.items} items, CE on the "
        f"last position; median of {args.repeats} steps. Machine: {machine}.",
        "Memory: " + ("CUDA allocator peak" if args.profile == "gpu" else "peak RSS") + " during warm-up and timed "
        "steps minus the amount held before the first step (model built): activations, gradients, Adam state.",
        f"Ratios: to RecBole {BASELINE} at the same length and precision (time ratio < 1 = faster).",
        "",
        "| model | L | step s | memory GiB | time / SASRec | memory / SASRec |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {label(row)} | {row['length']} | {row['error']} | | | |")
            continue
        base = baseline.get((row["length"], row["variant"]))
        ratio_t = f"{row['time_s'] / base['time_s']:.2f}" if base else "-"
        ratio_m = f"{row['memory_gib'] / base['memory_gib']:.2f}" if base and base["memory_gib"] > 0 else "-"
        lines.append(f"| {label(row)} | {row['length']} | {row['time_s']:.4f} | {row['memory_gib']:.3f} | "
                     f"{ratio_t} | {ratio_m} |")
    return "\n".join(lines) + "\n"


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in dict.fromkeys(label(r) for r in rows):
        ok = [r for r in rows if label(r) == name and "error" not in r]
        if ok:
            lengths = [r["length"] for r in ok]
            time_axis.plot(lengths, [r["time_s"] for r in ok], "o-", label=name)
            memory_axis.plot(lengths, [max(r["memory_gib"], 1e-3) for r in ok], "o-", label=name)
    lengths = sorted({r["length"] for r in rows})
    for axis, ylabel in ((time_axis, "step time, s"), (memory_axis, "peak memory, GiB")):
        axis.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel=ylabel)
        label_measured(axis, lengths)
        axis.grid(True, which="both", alpha=0.3)
    time_axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


def machine_description(device):
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


def specs(args):
    device = "cuda" if args.profile == "gpu" else "cpu"
    backends = args.backends or (["torch", "cuda"] if device == "cuda" else ["torch"])
    for variant in args.variants:
        for length in args.lengths:
            for model in args.models:
                common = {"model": model, "length": length, "variant": variant, "device": device,
                          "batch": args.batch, "items": args.items, "repeats": args.repeats, "warmup": 2}
                if model == "RecMamba":
                    for backend in backends:
                        yield {**common, "options": {"mamba_backend": backend}}
                else:
                    yield common


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--variants", nargs="+", choices=["fp32", "bf16"])
    parser.add_argument("--models", nargs="+", default=list(MODEL_OPTIONS), choices=list(MODEL_OPTIONS))
    parser.add_argument("--backends", nargs="+", choices=["torch", "cuda"], help="RecMamba backends to run")
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--timeout", type=int, help="seconds allowed per configuration")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return None
    for key, value in PROFILES[args.profile].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    rows = []
    for spec in specs(args):
        rows.append(measure(spec, args.timeout))
        row = rows[-1]
        print(f"{label(row):>22} L={row['length']:<5} " + (row.get("error") or
              f"{row['time_s']:.4f} s  {row['memory_gib']:.3f} GiB"), flush=True)
    machine = machine_description("cuda" if args.profile == "gpu" else "cpu")
    table = markdown(rows, args, machine)
    publish(args.out, f"efficiency_{args.profile}", table,
            lambda path: plot(rows, path, f"Training step vs length ({machine})"))
    return rows


if __name__ == "__main__":
    main()
