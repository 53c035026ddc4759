"""Convert KuaiRand raw interaction logs into a RecBole atomic ``.inter`` file for lifelong sequential models.

KuaiRand (https://kuairand.com, CC BY-SA 4.0) ships its interactions as CSV logs with 19 integer columns
(:data:`KUAIRAND_COLUMNS`), one file per collection period and policy::

    log_standard_4_08_to_4_21_1k.csv        log_standard_4_08_to_4_21_27k_part1.csv   log_standard_4_08_to_4_21_pure.csv
    log_standard_4_22_to_5_08_1k.csv        log_standard_4_08_to_4_21_27k_part2.csv   ...
    log_random_4_22_to_5_08_1k.csv          log_random_4_22_to_5_08_27k.csv

Usage::

    python -m recbole_mamba.data.kuairand --raw-dir ~/KuaiRand-1K/data --out-dir dataset --name kuairand

writes ``dataset/kuairand/kuairand.inter`` (``user_id:token  item_id:token  timestamp:float`` plus any
``--keep-fields`` as ``:float``) and prints a summary. The logs are streamed chunk by chunk (``usecols``, compact
dtypes), so the multi-GB files of KuaiRand-1K/27K are fine: the peak is about 60 bytes per kept row on top of the
interpreter (measured: 6M rows, 460 MB of CSV, in 15-20 s on 2 cores; KuaiRand-1K's 11.7M rows need < 1 GB).

What the conversion does, in order:

1. find the log files of one version (``--version``) and policy (``--logs``) under ``--raw-dir`` (recursively);
   files are read in a fixed order: by collection period, standard before random, then by part;
2. keep the rows that count as interactions (``--feedback``: ``all`` exposures, or rows whose flag is set, e.g.
   ``click`` = ``is_click == 1``; several names separated by commas keep rows with any of them);
3. order every user's rows by ``time_ms``; rows with equal ``time_ms`` keep their order in the files (stable);
4. keep each user's latest ``--max-user-length`` rows, then apply an iterative user/item ``--k-core``;
5. remap user and item ids to contiguous tokens ``1..n`` (in the order of the original ids; 0 is never used, so
   nothing collides with padding) and write ``time_ms / 1000`` as the timestamp in seconds (exact, ms kept).

Malformed input (no matching files, an empty or header-only file, missing columns, a missing, non-numeric or
non-integer value in a column that is read, a row cut short) raises :class:`KuaiRandFormatError` with a one-line
message naming the file and the 1-based line number, before anything is written. (Only the needed columns and the
header's last one are parsed, for speed: surplus fields at the end of a row go unnoticed.) The output is written to
a temporary file in the destination folder and moved into place with ``os.replace``, so an existing dataset is
either left untouched or replaced whole.

Reading checks, steps 3-5, the statistics and the writing are shared with the LFM-1b converter
(:mod:`recbole_mamba.data.converter_common`).

Synthetic data: a folder holding a ``SYNTHETIC`` marker file (see :mod:`recbole_mamba.data.synthetic_marker`) is
made of generated logs; the converter copies the marker from ``--raw-dir`` to the output folder, and deletes a
stale marker there when it writes data converted from logs without one (real KuaiRand).
"""

import argparse
import csv
import re
import sys
from pathlib import Path

import numpy as np

from recbole_mamba.data.converter_common import (
    RawDataError,
    check_name,
    concatenate_columns,
    read_first_line,
    read_int_chunks,
    run_converter,
    shorten_and_core,
    sort_by_user_time,
    write_dataset,
)
from recbole_mamba.data.converter_common import format_stats as format_sequence_stats
from recbole_mamba.progress import step

KUAIRAND_COLUMNS = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time", "comment_stay_time",
    "is_profile_enter", "is_rand", "tab",
)
# --feedback names -> the 0/1 column whose value 1 makes a row an interaction ("all": every exposure).
FEEDBACK_COLUMNS = {
    "click": "is_click",
    "like": "is_like",
    "follow": "is_follow",
    "comment": "is_comment",
    "forward": "is_forward",
    "hate": "is_hate",
    "long_view": "long_view",
    "profile_enter": "is_profile_enter",
}
# Columns --keep-fields may copy to the output (ids and time are always written as user_id/item_id/timestamp).
KEEPABLE_COLUMNS = tuple(c for c in KUAIRAND_COLUMNS if c not in ("user_id", "video_id", "time_ms"))
VERSIONS = ("1k", "27k", "pure")
LOG_CHOICES = ("standard", "random", "all")
DEFAULT_CHUNKSIZE = 1_000_000
READ_FIX = "KuaiRand logs hold integers only: re-download the file or repair that line"

LOG_FILE_PATTERN = re.compile(
    r"^log_(?P<kind>standard|random)_(?P<m0>\d{1,2})_(?P<d0>\d{1,2})_to_(?P<m1>\d{1,2})_(?P<d1>\d{1,2})"
    r"_(?P<version>1k|27k|pure)(?:_part(?P<part>\d+))?\.csv$"
)


class KuaiRandFormatError(RawDataError):
    """Bad or missing KuaiRand input; the message is one line naming the file and line where there is one."""


# ----------------------------------------------------------------------------------------------------------------
# Finding and reading the logs


def find_log_files(raw_dir, version="1k", logs="standard"):
    """The KuaiRand log CSVs of ``version`` and ``logs`` under ``raw_dir`` (searched recursively), in reading order.

    Reading order: collection period (start month, day), ``standard`` before ``random``, part number, name.
    Raises :class:`KuaiRandFormatError` when nothing matches or one file name occurs in two folders.
    """
    if version not in VERSIONS:
        raise KuaiRandFormatError("--version", f"unknown KuaiRand version '{version}'",
                                  f"choose one of {', '.join(VERSIONS)}")
    if logs not in LOG_CHOICES:
        raise KuaiRandFormatError("--logs", f"unknown --logs '{logs}'", f"choose one of {', '.join(LOG_CHOICES)}")
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise KuaiRandFormatError(raw_dir, "raw directory does not exist", "pass the folder of the KuaiRand logs")
    kinds = ("standard", "random") if logs == "all" else (logs,)
    found = {}
    for path in sorted(raw_dir.rglob("log_*.csv")):
        match = LOG_FILE_PATTERN.match(path.name)
        if not match or match["version"] != version or match["kind"] not in kinds or not path.is_file():
            continue
        if path.name in found:
            raise KuaiRandFormatError(path, f"same log file name also at {found[path.name][1]}", "keep only one copy")
        key = (int(match["m0"]), int(match["d0"]), kinds.index(match["kind"]), int(match["part"] or 0), path.name)
        found[path.name] = (key, path)
    if not found:
        pattern = f"log_{{{','.join(kinds)}}}_*_{version}{'[_partN]' if version == '27k' else ''}.csv"
        raise KuaiRandFormatError(raw_dir, f"no KuaiRand log files matching {pattern} (searched recursively)",
                                  "pass the folder of the downloaded logs, with their --version and --logs")
    return [path for _, path in sorted(found.values())]


def _read_header(path):
    first = read_first_line(path, READ_FIX, KuaiRandFormatError)
    if not first.strip():
        raise KuaiRandFormatError(f"{path}: line 1", "empty file", "expected a CSV header with the KuaiRand columns")
    return [name.strip() for name in next(csv.reader([first]))]


def _read_one_file(path, columns, feedback_columns, chunksize):
    """Yield ``({column: int array}, rows_in_chunk)`` per chunk of ``path``; arrays already filtered by feedback."""
    header = _read_header(path)
    missing = [name for name in columns if name not in header]
    if missing:
        shown = ", ".join(header) if len(", ".join(header)) <= 300 else ", ".join(header)[:297] + "..."
        raise KuaiRandFormatError(f"{path}: line 1", f"missing column(s) {', '.join(missing)} in the header "
                                  f"(found: {shown})", "pass KuaiRand's log CSVs, with their header")
    # The header's last column is read too: a row cut short (a truncated download) leaves it empty.
    read_columns = list(dict.fromkeys(columns + (header[-1],)))
    rows = 0
    for arrays, chunk_rows in read_int_chunks(path, read_columns, columns, chunksize, READ_FIX, first_line=1,
                                              error=KuaiRandFormatError, usecols=read_columns):
        rows += chunk_rows
        if feedback_columns:
            keep = np.zeros(chunk_rows, dtype=bool)
            for name in feedback_columns:
                keep |= arrays[name] > 0
            arrays = {name: values[keep] for name, values in arrays.items()}
        yield arrays, chunk_rows
    if rows == 0:
        raise KuaiRandFormatError(f"{path}: line 2", "no data rows (the file holds only a header)",
                                  "re-download the file")


def read_logs(files, feedback="all", keep_fields=(), chunksize=DEFAULT_CHUNKSIZE):
    """Read ``files`` in order into integer arrays, dropping rows that do not match ``feedback`` while streaming.

    Returns ``(data, rows_read)``: ``data`` maps ``user_id``, ``video_id``, ``time_ms`` and each kept field to an
    array in file order; ``rows_read`` counts rows before the feedback filter.
    """
    feedback_columns = parse_feedback(feedback)
    keep_fields = parse_keep_fields(keep_fields)
    columns = tuple(dict.fromkeys(("user_id", "video_id", "time_ms") + feedback_columns + keep_fields))
    parts = {column: [] for column in columns}
    rows_read = 0
    for path in files:
        for arrays, rows in _read_one_file(path, columns, feedback_columns, chunksize):
            rows_read += rows
            for column in columns:
                parts[column].append(arrays[column])
    data = concatenate_columns(parts)
    return {column: data[column] for column in ("user_id", "video_id", "time_ms") + keep_fields}, rows_read


def parse_feedback(feedback):
    """``"all"`` -> ``()``; ``"click,long_view"`` -> ``("is_click", "long_view")`` (rows with any flag set)."""
    names = [name.strip() for name in str(feedback).split(",") if name.strip()]
    if not names or names == ["all"]:
        return ()
    unknown = [name for name in names if name not in FEEDBACK_COLUMNS]
    if unknown or "all" in names:
        choices = ", ".join(("all",) + tuple(FEEDBACK_COLUMNS))
        raise KuaiRandFormatError(f"--feedback '{feedback}'", "unknown --feedback name",
                                  f"use 'all' or comma-separated names from {choices}")
    return tuple(dict.fromkeys(FEEDBACK_COLUMNS[name] for name in names))


def parse_keep_fields(keep_fields):
    """``"is_click,play_time_ms"`` or a list -> a tuple of KuaiRand column names to copy as float fields."""
    if isinstance(keep_fields, str):
        keep_fields = keep_fields.split(",")
    names = tuple(dict.fromkeys(name.strip() for name in keep_fields or () if name.strip()))
    unknown = [name for name in names if name not in KEEPABLE_COLUMNS]
    if unknown:
        raise KuaiRandFormatError("--keep-fields", f"unknown --keep-fields {', '.join(unknown)}",
                                  f"choose from {', '.join(KEEPABLE_COLUMNS)}")
    return names


# ----------------------------------------------------------------------------------------------------------------
# The conversion


def convert(raw_dir, out_dir, name="kuairand", version="1k", logs="standard", feedback="all", keep_fields=(),
            k_core_min=0, max_user_length=0, chunksize=DEFAULT_CHUNKSIZE, verbose=False):
    """Convert KuaiRand logs under ``raw_dir`` into ``<out_dir>/<name>/<name>.inter``; return the statistics dict.

    See the module docstring for the steps. ``k_core_min`` <= 1 and ``max_user_length`` <= 0 disable those filters.
    Raises :class:`KuaiRandFormatError` (nothing written) on malformed input or when no interaction is left.
    """
    check_name(name, KuaiRandFormatError)
    parse_feedback(feedback)
    keep_fields = parse_keep_fields(keep_fields)
    files = find_log_files(raw_dir, version=version, logs=logs)
    with step("reading " + ", ".join(str(path) for path in files), verbose):
        data, rows_read = read_logs(files, feedback, keep_fields, chunksize)
    rows_after_feedback = int(data["user_id"].size)
    if rows_after_feedback == 0:
        raise KuaiRandFormatError("--feedback", f"no interactions left: no row of {len(files)} file(s) matches "
                                  f"--feedback {feedback}", "choose another --feedback")

    with step(f"sorting {rows_after_feedback:,} interactions by user and time", verbose):
        sort_by_user_time(data, "user_id", "time_ms")
    user, item, time_ms = data.pop("user_id"), data.pop("video_id"), data.pop("time_ms")
    user, item, time_ms, fields = shorten_and_core(user, item, time_ms, data, max_user_length, k_core_min, verbose)
    if user.size == 0:
        raise KuaiRandFormatError("--k-core", f"no interactions left after --k-core {k_core_min} "
                                  f"(from {rows_after_feedback} rows)", "lower --k-core")

    stats = {"name": name, "files": [str(path) for path in files], "rows_read": rows_read,
             "feedback": str(feedback), "rows_after_feedback": rows_after_feedback}
    stats.update(write_dataset(out_dir, name, raw_dir, user, item, time_ms, fields, "ms", verbose))
    return stats


def format_stats(stats):
    """Human-readable multi-line summary of :func:`convert`'s statistics."""
    first = []
    if "rows_read" in stats:
        first.append(f"read {stats['rows_read']:,} rows from {len(stats['files'])} file(s); "
                     f"{stats['rows_after_feedback']:,} kept by feedback '{stats['feedback']}'")
    return format_sequence_stats(stats, first)


# ----------------------------------------------------------------------------------------------------------------
# Command line


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_mamba.data.kuairand",
        description="Convert KuaiRand raw logs into a RecBole atomic .inter file (<out-dir>/<name>/<name>.inter).",
    )
    parser.add_argument("--raw-dir", required=True, help="folder holding the KuaiRand log CSVs (searched recursively)")
    parser.add_argument("--out-dir", required=True, help="RecBole data_path: the dataset goes to OUT_DIR/NAME/")
    parser.add_argument("--name", default="kuairand", help="output dataset name (default: kuairand)")
    parser.add_argument("--version", choices=VERSIONS, default="1k", help="KuaiRand version of the logs (default: 1k)")
    parser.add_argument("--logs", choices=LOG_CHOICES, default="standard",
                        help="standard (recommendation feed), random (randomly exposed videos) or all (default: "
                             "standard)")
    parser.add_argument("--feedback", default="all",
                        help="rows that count as interactions: all (every exposure, default) or comma-separated "
                             f"names from {', '.join(FEEDBACK_COLUMNS)} (a row with any of them set)")
    parser.add_argument("--keep-fields", default="",
                        help="comma-separated KuaiRand columns to keep as float fields (e.g. is_click,play_time_ms)")
    parser.add_argument("--k-core", type=int, default=0, metavar="N",
                        help="iterative k-core: keep users and items with at least N interactions (default: off)")
    parser.add_argument("--max-user-length", type=int, default=0, metavar="N",
                        help="keep only each user's latest N interactions (default: all)")
    parser.add_argument("--chunksize", type=int, default=DEFAULT_CHUNKSIZE, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_converter(
        lambda: convert(args.raw_dir, args.out_dir, name=args.name, version=args.version, logs=args.logs,
                        feedback=args.feedback, keep_fields=args.keep_fields, k_core_min=args.k_core,
                        max_user_length=args.max_user_length, chunksize=args.chunksize, verbose=not args.quiet),
        format_stats, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
