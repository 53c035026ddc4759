"""Selective-scan benchmark: the chunked PyTorch scan against an efficient step-by-step loop.

    python -m recbole_mamba.bench.scan [--lengths 256 512 1024 2048] [--batch 2 --dim 128 --state 16]

Times forward + backward (median of ``--repeats`` after one warm-up, the two implementations interleaved so that
machine noise hits both), checks the scan's error against a float64 run of the loop, prints a markdown table and
writes it with a PNG plot under ``results/``. The loop baseline is timed with and without flushing denormals to
zero (the chunked scan always flushes them); the speed-up is quoted against the faster of the two.

The loop's time depends on the memory allocator (its autograd graph takes ~80,000 page faults per forward + backward
under glibc's defaults); ``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296`` in the environment
(with ``--out results/malloc_tuned``) measures both without those faults.
"""

import argparse
import functools
import platform
import statistics
import time
from pathlib import Path

import torch

from recbole_mamba.bench.results import RESULTS_DIR, label_measured, publish, save_figure
from recbole_mamba.ops import selective_scan_fn, selective_scan_ref
from recbole_mamba.progress import step

CHUNKED = functools.partial(selective_scan_fn, backend="torch")


def make_inputs(batch, dim, length, n_state, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "u": torch.randn(batch, dim, length, generator=generator),
        "delta": torch.randn(batch, dim, length, generator=generator) * 0.5,
        "A": -torch.rand(dim, n_state, generator=generator) * 3 - 0.1,
        "B": torch.randn(batch, n_state, length, generator=generator),
        "C": torch.randn(batch, n_state, length, generator=generator),
        "D": torch.randn(dim, generator=generator),
        "z": torch.randn(batch, dim, length, generator=generator),
    }


def forward_backward(function, inputs, flush_denormal=False):
    """Seconds for one forward + backward of ``function`` on fresh leaves."""
    leaves = {name: value.clone().requires_grad_() for name, value in inputs.items()}
    torch.set_flush_denormal(flush_denormal)
    try:
        start = time.perf_counter()
        function(**leaves, delta_softplus=True).sum().backward()
        return time.perf_counter() - start
    finally:
        torch.set_flush_denormal(False)


def max_relative_error(inputs):
    """Forward and input-gradient error of the float32 scan against the float64 loop (max |err| / max |ref|)."""
    def outputs(function, dtype):
        leaves = {name: value.to(dtype).requires_grad_() for name, value in inputs.items()}
        y = function(**leaves, delta_softplus=True)
        grads = torch.autograd.grad(y.sum(), list(leaves.values()))
        return [y.detach(), *grads]

    errors = [(got.double() - ref).abs().max() / ref.abs().max()
              for got, ref in zip(outputs(CHUNKED, torch.float32), outputs(selective_scan_ref, torch.float64))]
    return max(errors).item()


def measure(length, args):
    inputs = make_inputs(args.batch, args.dim, length, args.state)
    candidates = {
        "loop": lambda: forward_backward(selective_scan_ref, inputs),
        "loop_ftz": lambda: forward_backward(selective_scan_ref, inputs, flush_denormal=True),
        "chunked": lambda: forward_backward(CHUNKED, inputs),
    }
    for run in candidates.values():  # warm-up
        run()
    times = {name: [] for name in candidates}
    for _ in range(args.repeats):
        for name, run in candidates.items():
            times[name].append(run())
    row = {name: statistics.median(values) for name, values in times.items()}
    row["length"] = length
    row["speedup"] = min(row["loop"], row["loop_ftz"]) / row["chunked"]
    row["error"] = max_relative_error(make_inputs(1, 16, length, args.state, seed=1))
    return row


def markdown(rows, args):
    lines = [
        f"Selective scan, forward + backward, batch {args.batch}, dim {args.dim}, N {args.state}, float32, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, torch {torch.__version__}.",
        "Median of %d runs; `loop` = efficient step-by-step loop (one state update per step, `unbind`), with and "
        "without flush-to-zero; speed-up against the faster loop; error = max relative error of the float32 "
        "chunked scan (output and all input gradients) against the float64 loop." % args.repeats,
        "",
        "| L | loop s | loop (ftz) s | chunked s | speed-up | rel. error |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['length']} | {r['loop']:.3f} | {r['loop_ftz']:.3f} | {r['chunked']:.4f} | "
              f"{r['speedup']:.1f}x | {r['error']:.1e} |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = [r["length"] for r in rows]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(lengths, [min(r["loop"], r["loop_ftz"]) for r in rows], "o-", label="step-by-step loop")
    axis.plot(lengths, [r["chunked"] for r in rows], "s-", label="chunked PyTorch scan")
    axis.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="forward + backward, s",
             title="Selective scan on CPU (float32)")
    label_measured(axis, lengths)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for scan.md and scan.png")
    args = parser.parse_args(argv)
    rows = []
    for length in args.lengths:
        with step(f"measuring L={length}"):
            rows.append(measure(length, args))
    table = markdown(rows, args)
    publish(args.out, "scan", table, lambda path: plot(rows, path))
    return rows


if __name__ == "__main__":
    main()
