"""Memory benchmark of the lifelong data pipeline at KuaiRand-1K scale, on SYNTHETIC data.

Usage::

    python -m recbole_mamba.bench.memory                    # 1,000 users, 11.7M interactions, L=2048 (a few minutes)
    python -m recbole_mamba.bench.memory --users 20 --interactions 20000 --out /tmp/memory.md   # smoke test

1. Writes (or reuses) a synthetic RecBole atomic file ``<workdir>/synthetic-lifelong/synthetic-lifelong.inter``
   with :func:`recbole_mamba.data.synthetic_lifelong.write_synthetic_inter` (KuaiRand-1K's shape only, item ids drawn
   from ``--items``; a ``SYNTHETIC`` marker file sits next to it). No real user data is involved.
2. In a fresh Python process, measures wall time and peak RSS (``VmHWM``) of: loading the dataset
   (``recbole_mamba.data.create_dataset``), building the loaders (``data_preparation``, ``train_mode: seq2seq``,
   BPR so batches carry ``neg_item_list`` too), one epoch over the train loader, and one pass over the test loader.
3. Prints a table next to what stock RecBole's ``SequentialDataset`` would allocate (computed, not run), plus the
   time and peak RSS of RecBole's own parser alone on the same file (another fresh process; ``--skip-stock-parse``
   leaves it out), and writes it to ``--out`` (default ``results/memory.md``).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from recbole_mamba.bench.results import RESULTS_DIR, write_text
from recbole_mamba.bench.rss import current_rss_bytes, peak_rss_bytes
from recbole_mamba.data.synthetic_lifelong import write_synthetic_inter
from recbole_mamba.progress import step

DATASET = "synthetic-lifelong"
FIELD_BYTES = {"item_id": 8, "timestamp": 4}  # RecBole: token fields -> int64, float fields -> float32


def ensure_dataset(workdir, users, interactions, items, seed):
    folder = Path(workdir) / DATASET
    meta_file = folder / "meta.json"
    wanted = {"users": users, "requested_interactions": interactions, "item_ids": items, "seed": seed}
    if meta_file.is_file() and (folder / f"{DATASET}.inter").is_file():
        meta = json.loads(meta_file.read_text())
        if all(meta.get(k) == v for k, v in wanted.items()):
            return meta, 0.0
    began = time.time()
    with step(f"generating a synthetic dataset of {interactions:,} interactions in {folder}"):
        meta = dict(write_synthetic_inter(folder, users, interactions, items, seed), **wanted)
    write_text(meta_file, json.dumps(meta, indent=1))
    return meta, time.time() - began


def child(args):
    """Runs in a fresh process: build and iterate the loaders, report phases as JSON on the last stdout line."""
    sys.argv = sys.argv[:1]  # RecBole's Config parses sys.argv
    phases = []

    def mark(name, began, **extra):
        phases.append(dict(phase=name, seconds=time.time() - began, peak_rss=peak_rss_bytes(),
                           rss=current_rss_bytes(), **extra))

    began = time.time()
    from recbole.config import Config
    from recbole.utils import init_seed

    from recbole_mamba.data import create_dataset, data_preparation, fields

    mark("baseline (python + torch + recbole imported)", began, load_average=round(os.getloadavg()[0], 1))
    config = Config(model="SASRec", dataset=DATASET, config_dict={
        "data_path": str(args.workdir), "checkpoint_dir": str(Path(args.workdir) / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len, "lifelong_sequences": True, "train_mode": "seq2seq",
        "seq2seq_stride": args.stride, "loss_type": "BPR",
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": args.eval_mode},
        "train_batch_size": args.train_batch_size, "eval_batch_size": args.eval_batch_size,
        "use_gpu": False, "show_progress": False, "state": "ERROR",
    })
    init_seed(config["seed"], config["reproducibility"])

    began = time.time()
    dataset = create_dataset(config)
    mark("load dataset (create_dataset)", began, interactions=int(len(dataset.inter_feat)))
    began = time.time()
    train_data, valid_data, test_data = data_preparation(config, dataset)
    mark("build loaders (data_preparation)", began, train_windows=len(train_data._dataset),
         test_users=len(test_data._dataset))
    began = time.time()
    batches = targets = 0
    for batch in train_data:
        batches += 1
        targets += int((batch[fields.TARGET_ITEM_LIST] > 0).sum())
    mark("1 epoch over train loader", began, batches=batches, trained_targets=targets,
         batch_shape=list(batch["item_id_list"].shape))
    began = time.time()
    rows = 0
    for batch in test_data:
        rows += len(batch[0])
    mark(f"1 pass over test loader ({args.eval_mode})", began, rows=rows)
    largest = max(
        t.numel() for t in [*dataset._flat.interaction.values(), *train_data._dataset.inter_feat.interaction.values()]
    )
    print(json.dumps({"phases": phases, "largest_tensor_numel": largest, "users": int(dataset.user_num - 1),
                      "items": int(dataset.item_num - 1)}))


def stock_parse_child(args):
    """Runs in a fresh process: only RecBole's own ``Dataset._load_feat`` (pandas' Python parser) on the file."""
    sys.argv = sys.argv[:1]
    from recbole.config import Config  # with the compatibility fixes (importing recbole_mamba.data applied them)
    from recbole.data.dataset import Dataset
    from recbole.utils import FeatureSource

    config = Config(model="SASRec", dataset=DATASET, config_dict={
        "data_path": str(args.workdir), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "use_gpu": False, "state": "ERROR", "train_neg_sample_args": None,
    })
    stock = Dataset.__new__(Dataset)  # RecBole's loader method on a bare dataset: the parse step alone
    stock.config, stock.logger = config, __import__("logging").getLogger()
    stock.field2source, stock.field2type, stock.field2seqlen, stock.field2bucketnum = {}, {}, {}, {}
    began = time.time()
    frame = Dataset._load_feat(stock, str(Path(config["data_path"]) / f"{DATASET}.inter"), FeatureSource.INTERACTION)
    print(json.dumps({"seconds": time.time() - began, "peak_rss": peak_rss_bytes(), "rows": len(frame)}))


def gib(n):
    return f"{n / 2**30:.2f} GiB"


def stock_estimate(interactions, users, max_len):
    """Bytes of the padded list tensors stock RecBole's SequentialDataset.data_augmentation allocates."""
    rows = interactions - users  # one augmented row per non-first interaction
    per_row = max_len * sum(FIELD_BYTES.values())
    return rows, rows * per_row


def report(args, meta, generation_seconds, result, wall, stock_parse=None):
    n, users = meta["interactions"], meta["users"]
    rows, lists = stock_estimate(n, users, args.max_len)
    lines = [
        "# Memory benchmark: lifelong data pipeline (SYNTHETIC data)",
        "",
        f"Generated by `{' '.join(['python -m recbole_mamba.bench.memory', *args.argv])}`.",
        "",
        f"Data: **synthetic** atomic file shaped like KuaiRand-1K (not real data): {users:,} users, {n:,} "
        f"interactions, item ids drawn from {meta['item_ids']:,} ({meta['distinct_items']:,} used), per-user length "
        f"median {meta['median_length']:,.0f}, min {meta['min_length']:,}, max {meta['max_length']:,}.",
        f"Settings: `train_mode: seq2seq`, MAX_ITEM_LIST_LENGTH (L) = {args.max_len}, seq2seq_stride = "
        f"{args.stride or args.max_len}, loss_type BPR (batches carry `neg_item_id` and `neg_item_list`), "
        f"train_batch_size {args.train_batch_size}, eval mode `{args.eval_mode}` "
        f"(eval_batch_size {args.eval_batch_size}).",
        f"Measured in a fresh process on this machine ({os.cpu_count()} CPU cores); peak RSS is that process's "
        "`VmHWM`, cumulative (each row: the peak so far); wall times grow when other processes share the cores "
        "(`load_average`: the 1-minute load when the run started). Generating the file took "
        + (f"{generation_seconds:.0f} s." if generation_seconds else "no time (reused)."),
        "",
        "| phase | wall time | peak RSS so far | RSS after | details |",
        "|---|---|---|---|---|",
    ]
    for p in result["phases"]:
        details = ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
            for k, v in p.items() if k not in ("phase", "seconds", "peak_rss", "rss")
        )
        lines.append(f"| {p['phase']} | {p['seconds']:.1f} s | {gib(p['peak_rss'])} | {gib(p['rss'])} | {details} |")
    peak = result["phases"][-1]["peak_rss"]
    lines += [
        "",
        f"**Peak RSS: {gib(peak)}** (target <= 4 GiB); child process wall time {wall:.0f} s. Largest tensor held: "
        f"{result['largest_tensor_numel']:,} elements (N = {n:,}; N x L = {n * args.max_len:,}).",
        "",
        "## What stock RecBole would need (computed, not run)",
        "",
        "`SequentialDataset.data_augmentation` builds one row per non-first interaction (N - U rows) and, for every "
        "loaded inter field except the user id, a dense zero-padded `(N - U) x L` tensor of that field's dtype "
        "(token -> int64, 8 B; float -> float32, 4 B):",
        "",
        f"    lists = (N - U) x L x (8 B item_id + 4 B timestamp) = {rows:,} x {args.max_len} x 12 B = {gib(lists)}",
        "",
        "| | bytes |",
        "|---|---|",
        f"| item_id_list alone, (N - U) x L x 8 B | {gib(rows * args.max_len * 8)} |",
        f"| all list fields once (item_id_list + timestamp_list) | {gib(lists)} |",
        f"| during `build()`: augmented data + leave-one-out split copies (`inter_feat[index]` copies every list) "
        f"| ~{gib(2 * lists)} |",
        f"| this pipeline, measured peak RSS | {gib(peak)} |",
        "",
    ]
    if stock_parse:
        lines += [
            f"Parsing alone with RecBole's own `Dataset._load_feat` (pandas' Python engine), measured in another fresh "
            f"process: {stock_parse['seconds']:.1f} s and {gib(stock_parse['peak_rss'])} peak RSS for the "
            f"{stock_parse['rows']:,} rows, before any filtering, remapping or augmentation (this pipeline's whole "
            f"`create_dataset`: {result['phases'][1]['seconds']:.1f} s).",
            "",
        ]
    lines += [
        "Formula: stock RecBole holds `(N - U) x L x sum(bytes per list field)` for the augmented data, and "
        "`Dataset.build()` copies every row into the train/valid/test splits (`Interaction.__getitem__`), so about "
        "twice that while the full dataset is referenced; on top come the Python lists of per-row slices in the "
        "augmentation loop (N objects). The lifelong pipeline keeps N rows once (sorted by user and time) plus "
        "one small row per example, and gathers `(batch, L)` windows at batch time.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text)
    return peak


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--interactions", type=int, default=11_700_000)
    parser.add_argument("--items", type=int, default=None, help="item ids to draw from (default: interactions x 0.37)")
    parser.add_argument("--max-len", type=int, default=2048)
    parser.add_argument("--stride", type=int, default=None, help="seq2seq_stride (default: --max-len)")
    parser.add_argument("--train-batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--eval-mode", default="full", help="full, uni100, uni1000, ...")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--workdir", default=str(RESULTS_DIR / "tmp" / "memory"))
    parser.add_argument("--out", default=str(RESULTS_DIR / "memory.md"))
    parser.add_argument("--skip-stock-parse", action="store_true",
                        help="do not time RecBole's own parser on the file (about a minute at full size)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stock-parse-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = argv
    args.workdir = os.path.abspath(args.workdir)
    if args.items is None:
        args.items = max(10, int(args.interactions * 0.37))  # KuaiRand-1K: 4.37M items for 11.7M rows
    if args.child:
        return child(args)
    if args.stock_parse_child:
        return stock_parse_child(args)

    meta, generation_seconds = ensure_dataset(args.workdir, args.users, args.interactions, args.items, args.seed)
    began = time.time()
    command = [
        sys.executable, "-m", "recbole_mamba.bench.memory", "--child", "--workdir", args.workdir,
        "--max-len", str(args.max_len), "--train-batch-size", str(args.train_batch_size),
        "--eval-batch-size", str(args.eval_batch_size), "--eval-mode", args.eval_mode,
    ] + (["--stride", str(args.stride)] if args.stride else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=args.workdir)
    wall = time.time() - began
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"benchmark process failed with exit code {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stock_parse = None
    if not args.skip_stock_parse:
        done = subprocess.run(
            [sys.executable, "-m", "recbole_mamba.bench.memory", "--stock-parse-child", "--workdir", args.workdir],
            capture_output=True, text=True, cwd=args.workdir,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"stock parse process failed with exit code {done.returncode}")
        stock_parse = json.loads(done.stdout.strip().splitlines()[-1])
    report(args, meta, generation_seconds, result, wall, stock_parse)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
