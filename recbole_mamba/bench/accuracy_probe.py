"""Targeted accuracy runs: RecMamba variants against its defaults on the accuracy benchmark's SYNTHETIC lifelong set.

    python -m recbole_mamba.bench.accuracy_probe --profile reduced --length 200 \\
        --variant d_state=64,expand=4 --variant num_layers=2 --variant epochs=30,stopping_step=4

Each variant overrides the profile's budget and the model defaults; every variant and the baseline (no override)
train once with the same seed (``--seed``; default: the profile's first) on the same generated set
(:func:`recbole_mamba.bench.accuracy.make_synthetic`), and the table gives HR@10 / NDCG@10 with 95% bootstrap
intervals and each variant's paired difference to the baseline.
Prints the table and writes it to ``--out`` when given.
"""

import argparse
import tempfile
from pathlib import Path

import yaml

from recbole_mamba.bench import accuracy, confidence
from recbole_mamba.bench.results import write_text


def parse_variant(text):
    """``"a=1,b=x"`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML)."""
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in text.split(","))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(accuracy.PROFILES), default="reduced")
    parser.add_argument("--model", default="RecMamba")
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--variant", action="append", default=[], type=parse_variant)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--seed", type=int, help="data and training seed (default: the profile's first)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    profile = accuracy.PROFILES[args.profile]
    seed = profile["seeds"][0] if args.seed is None else args.seed
    variants = {"baseline": {}, **{",".join(f"{k}={v}" for k, v in variant.items()): variant
                                  for variant in args.variant}}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        stats = accuracy.make_synthetic(workdir / "dataset", profile["synthetic"], seed=seed)
        jobs = {(accuracy.SYNTHETIC, name, args.length, seed): {
            "model": args.model, "dataset": accuracy.SYNTHETIC, "workdir": str(workdir),
            "threads": accuracy.threads_per_run(args.parallel),
            "options": {**accuracy.SHARED, **profile["budget"][accuracy.SYNTHETIC], "seed": seed,
                        "MAX_ITEM_LIST_LENGTH": args.length, "data_path": str(workdir / "dataset"), **variant}}
            for name, variant in variants.items()}
        done = accuracy.run_jobs(jobs, args.parallel)
    values = {key[1]: confidence.per_user_metrics(run["ranks"], accuracy.KS) for key, run in done.items()}
    indices = confidence.resample_indices(len(values["baseline"]["hit@10"]), seed=seed)
    lines = [f"# {args.model} variants on {accuracy.SYNTHETIC} (SYNTHETIC; {stats['description']}), "
             f"L = {args.length}, seed {seed}, profile {args.profile}", "",
             "| variant | HR@10 | NDCG@10 | NDCG@10 - baseline | validations | s |", "|---|---:|---:|---:|---:|---:|"]
    for (_, name, _, _), run in done.items():
        row = {metric: confidence.interval(values[name][metric], indices) for metric in ("hit@10", "ndcg@10")}
        difference = confidence.paired_difference(values[name]["ndcg@10"], values["baseline"]["ndcg@10"], indices)
        lines.append(f"| {name} | {accuracy.cell(row['hit@10'])} | {accuracy.cell(row['ndcg@10'])} | "
                     f"{accuracy.cell(difference)} ({confidence.verdict(difference)}) | {run['validations']} | "
                     f"{run['seconds']:.0f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        write_text(args.out, table)
    return done


if __name__ == "__main__":
    main()
