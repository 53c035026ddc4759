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
import pandas as pd

from recbole_mamba.atomic_file import write_atomic
from recbole_mamba.data.synthetic_marker import is_synthetic, remove_marker, synthetic_description, write_marker
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
REPEAT_WINDOWS = (50, 2048)  # history windows reported by the "next item seen before" statistics
DEFAULT_CHUNKSIZE = 1_000_000

LOG_FILE_PATTERN = re.compile(
    r"^log_(?P<kind>standard|random)_(?P<m0>\d{1,2})_(?P<d0>\d{1,2})_to_(?P<m1>\d{1,2})_(?P<d1>\d{1,2})"
    r"_(?P<version>1k|27k|pure)(?:_part(?P<part>\d+))?\.csv$"
)


class KuaiRandFormatError(ValueError):
    """Bad or missing KuaiRand input; the message is one line naming the file and line where there is one."""


# ----------------------------------------------------------------------------------------------------------------
# Finding and reading the logs


def find_log_files(raw_dir, version="1k", logs="standard"):
    """The KuaiRand log CSVs of ``version`` and ``logs`` under ``raw_dir`` (searched recursively), in reading order.

    Reading order: collection period (start month, day), ``standard`` before ``random``, part number, name.
    Raises :class:`KuaiRandFormatError` when nothing matches or one file name occurs in two folders.
    """
    if version not in VERSIONS:
        raise KuaiRandFormatError(f"unknown KuaiRand version '{version}': choose one of {', '.join(VERSIONS)}")
    if logs not in LOG_CHOICES:
        raise KuaiRandFormatError(f"unknown --logs '{logs}': choose one of {', '.join(LOG_CHOICES)}")
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise KuaiRandFormatError(f"{raw_dir}: raw directory does not exist")
    kinds = ("standard", "random") if logs == "all" else (logs,)
    found = {}
    for path in sorted(raw_dir.rglob("log_*.csv")):
        match = LOG_FILE_PATTERN.match(path.name)
        if not match or match["version"] != version or match["kind"] not in kinds or not path.is_file():
            continue
        if path.name in found:
            raise KuaiRandFormatError(f"{path}: same log file name also at {found[path.name][1]}: keep only one copy")
        key = (int(match["m0"]), int(match["d0"]), kinds.index(match["kind"]), int(match["part"] or 0), path.name)
        found[path.name] = (key, path)
    if not found:
        pattern = f"log_{{{','.join(kinds)}}}_*_{version}{'[_partN]' if version == '27k' else ''}.csv"
        raise KuaiRandFormatError(f"{raw_dir}: no KuaiRand log files matching {pattern} (searched recursively)")
    return [path for _, path in sorted(found.values())]


def _read_header(path):
    with open(path, newline="", encoding="utf-8-sig") as handle:
        first = handle.readline()
    if not first.strip():
        raise KuaiRandFormatError(f"{path}: line 1: empty file (expected a CSV header with the KuaiRand columns)")
    return [name.strip() for name in next(csv.reader([first]))]


def _first_bad_row(values):
    """Index of the first value in ``values`` (a column of one chunk) that is not an integer, or ``None``."""
    if values.dtype.kind == "i":
        return None
    if values.dtype.kind == "u":
        bad = values.to_numpy() > np.iinfo(np.int64).max
    else:
        numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(numeric) | (numeric != np.floor(numeric)) | (np.abs(numeric) >= 2.0**63)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def _compact(values):
    """``values`` as int32 when every value fits (ids, flags), else int64 (``time_ms``)."""
    info = np.iinfo(np.int32)
    if values.size and (values.min() < info.min or values.max() > info.max):
        return values
    return values.astype(np.int32)


def _describe(value):
    if isinstance(value, float) and np.isnan(value):
        return "missing value"
    text = str(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"non-integer value {text!r}"


def _read_one_file(path, columns, feedback_columns, chunksize):
    """Yield ``({column: int array}, rows_in_chunk)`` per chunk of ``path``; arrays already filtered by feedback."""
    line = 1  # lines consumed so far (the header)
    rows = 0
    try:
        header = _read_header(path)
        missing = [name for name in columns if name not in header]
        if missing:
            shown = ", ".join(header) if len(", ".join(header)) <= 300 else ", ".join(header)[:297] + "..."
            raise KuaiRandFormatError(
                f"{path}: line 1: missing column(s) {', '.join(missing)} in the header (found: {shown})"
            )
        # The header's last column is read too: a row cut short (a truncated download) leaves it empty.
        read_columns = list(dict.fromkeys(columns + (header[-1],)))
        reader = pd.read_csv(
            path, usecols=read_columns, chunksize=chunksize, skip_blank_lines=False, index_col=False,
            encoding="utf-8-sig", low_memory=False,
        )
        with reader:
            for chunk in reader:
                for name in read_columns:
                    bad = _first_bad_row(chunk[name])
                    if bad is not None:
                        raise KuaiRandFormatError(
                            f"{path}: line {line + bad + 1}: {_describe(chunk[name].iloc[bad])} in column '{name}'"
                        )
                line += len(chunk)
                rows += len(chunk)
                arrays = {name: _compact(chunk[name].to_numpy(dtype=np.int64)) for name in columns}
                if feedback_columns:
                    keep = np.zeros(len(chunk), dtype=bool)
                    for name in feedback_columns:
                        keep |= arrays[name] > 0
                    arrays = {name: values[keep] for name, values in arrays.items()}
                yield arrays, len(chunk)
    except pd.errors.EmptyDataError:
        raise KuaiRandFormatError(
            f"{path}: line 1: empty file (expected a CSV header with the KuaiRand columns)"
        ) from None
    except pd.errors.ParserError as err:
        message = " ".join(str(err).split())
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
        if found:
            expected, bad_line, saw = found.groups()
            message = f"line {bad_line}: expected {expected} fields, saw {saw}"
        raise KuaiRandFormatError(f"{path}: {message}") from None
    except UnicodeDecodeError as err:
        raise KuaiRandFormatError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    if rows == 0:
        raise KuaiRandFormatError(f"{path}: line 2: no data rows (the file holds only a header)")


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
    data = {column: (np.concatenate(chunks) if chunks else np.zeros(0, np.int32)) for column, chunks in parts.items()}
    return {column: data[column] for column in ("user_id", "video_id", "time_ms") + keep_fields}, rows_read


def parse_feedback(feedback):
    """``"all"`` -> ``()``; ``"click,long_view"`` -> ``("is_click", "long_view")`` (rows with any flag set)."""
    names = [name.strip() for name in str(feedback).split(",") if name.strip()]
    if not names or names == ["all"]:
        return ()
    unknown = [name for name in names if name not in FEEDBACK_COLUMNS]
    if unknown or "all" in names:
        choices = ", ".join(("all",) + tuple(FEEDBACK_COLUMNS))
        raise KuaiRandFormatError(f"unknown --feedback '{feedback}': use 'all' or comma-separated names from {choices}")
    return tuple(dict.fromkeys(FEEDBACK_COLUMNS[name] for name in names))


def parse_keep_fields(keep_fields):
    """``"is_click,play_time_ms"`` or a list -> a tuple of KuaiRand column names to copy as float fields."""
    if isinstance(keep_fields, str):
        keep_fields = keep_fields.split(",")
    names = tuple(dict.fromkeys(name.strip() for name in keep_fields or () if name.strip()))
    unknown = [name for name in names if name not in KEEPABLE_COLUMNS]
    if unknown:
        raise KuaiRandFormatError(
            f"unknown --keep-fields {', '.join(unknown)}: choose from {', '.join(KEEPABLE_COLUMNS)}"
        )
    return names


# ----------------------------------------------------------------------------------------------------------------
# Ordering, filtering, remapping


def order_by_user_time(user, time_ms):
    """Permutation grouping rows by user and ordering each user's rows by time; ties keep input order (stable)."""
    return np.lexsort((time_ms, user))


def latest_per_user(user_sorted, max_length):
    """Boolean mask over rows grouped by user in time order that keeps each user's latest ``max_length`` rows."""
    if not max_length or max_length <= 0 or user_sorted.size == 0:
        return np.ones(user_sorted.size, dtype=bool)
    starts = np.flatnonzero(np.r_[True, user_sorted[1:] != user_sorted[:-1]])
    ends = np.r_[starts[1:], user_sorted.size]
    group = np.repeat(np.arange(starts.size), ends - starts)
    position_from_end = ends[group] - np.arange(user_sorted.size)  # 1 for a user's last row
    return position_from_end <= max_length


def k_core(user, item, k):
    """Boolean mask of the rows in the iterative ``k``-core: every kept user and item has >= ``k`` kept rows."""
    keep = np.ones(user.size, dtype=bool)
    if not k or k <= 1 or user.size == 0:
        return keep
    _, user_codes = np.unique(user, return_inverse=True)
    _, item_codes = np.unique(item, return_inverse=True)
    index = np.arange(user.size)
    while index.size:
        u, i = user_codes[index], item_codes[index]
        ok = (np.bincount(u)[u] >= k) & (np.bincount(i)[i] >= k)
        if ok.all():
            break
        index = index[ok]
    keep[:] = False
    keep[index] = True
    return keep


def remap_ids(values):
    """Contiguous ids ``1..n`` in the order of the original ids (0 stays free for padding)."""
    _, codes = np.unique(values, return_inverse=True)
    codes = codes.reshape(-1)
    return (codes.astype(np.int32) if codes.size < np.iinfo(np.int32).max else codes) + 1


# ----------------------------------------------------------------------------------------------------------------
# Statistics


def repeat_stats(user, item, windows=REPEAT_WINDOWS):
    """How often an item was already consumed by the same user, overall and within the last ``w`` interactions.

    ``user`` and ``item`` are rows grouped by user in time order. Returns fractions for every row (``all_*``) and
    for each user's last row (``last_*``, the leave-one-out test target): ``*_in_last_<w>`` (the item occurs among
    the ``w`` rows before it) and ``*_in_history`` (anywhere before it). A model that reads only the last ``w``
    items cannot copy an item from further back: ``in_history`` minus ``in_last_w`` is what a longer context adds.
    """
    n = user.size
    stats = {}
    if n == 0:
        return stats
    # Stable sort by (user, item): rows of one user and item stay in time order, so each row's predecessor in
    # this order is the item's previous occurrence in the user's history.
    pairs = np.lexsort((item, user))
    repeat = np.zeros(n, dtype=bool)
    repeat[1:] = (user[pairs[1:]] == user[pairs[:-1]]) & (item[pairs[1:]] == item[pairs[:-1]])
    never = np.iinfo(np.int64).max
    gap = np.full(n, never, dtype=np.int64)
    later = np.flatnonzero(repeat)
    gap[pairs[later]] = pairs[later] - pairs[later - 1]
    del pairs, repeat, later
    last = np.r_[user[1:] != user[:-1], True]
    for prefix, rows in (("last", last), ("all", slice(None))):
        g = gap[rows]
        for w in windows:
            stats[f"{prefix}_in_last_{w}"] = float(np.mean(g <= w))
        stats[f"{prefix}_in_history"] = float(np.mean(g < never))
    return stats


def sequence_stats(user, item, time_seconds=None):
    """Users, items, interactions, user lengths and :func:`repeat_stats` of rows grouped by user in time order."""
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if user.size else np.zeros(1, np.int64)
    lengths = np.diff(np.r_[starts, user.size])
    stats = {
        "users": int(lengths.size) if user.size else 0,
        "items": _count_distinct(item),
        "interactions": int(user.size),
        "user_length_mean": round(float(lengths.mean()), 2),
        "user_length_median": float(np.median(lengths)),
        "user_length_min": int(lengths.min()),
        "user_length_max": int(lengths.max()),
    }
    if time_seconds is not None and time_seconds.size:
        stats["first_timestamp"] = float(time_seconds.min())
        stats["last_timestamp"] = float(time_seconds.max())
    stats.update(repeat_stats(user, item))
    return stats


def _count_distinct(values):
    if values.size and values.dtype.kind in "iu" and 0 <= values.min() and values.max() < 4 * values.size + 1024:
        return int(np.count_nonzero(np.bincount(values)))
    return int(np.unique(values).size)


def inter_file_stats(path):
    """:func:`sequence_stats` of an existing RecBole ``.inter`` file (its rows ordered by user, then time, stably)."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    columns = {name.split(":")[0]: name for name in frame.columns}
    user = remap_ids(frame[columns["user_id"]].to_numpy())
    item = remap_ids(frame[columns["item_id"]].to_numpy())
    if "timestamp" not in columns:
        order = np.argsort(user, kind="stable")
        return sequence_stats(user[order], item[order])
    time = frame[columns["timestamp"]].astype(np.float64).to_numpy()
    order = np.lexsort((time, user))
    return sequence_stats(user[order], item[order], time[order])


def format_stats(stats):
    """Human-readable multi-line summary of :func:`convert`'s statistics."""
    lines = [
        f"{stats.get('name', 'dataset')}: {stats['users']:,} users, {stats['items']:,} items, "
        f"{stats['interactions']:,} interactions",
        f"user length: mean {stats['user_length_mean']:,.1f}, median {stats['user_length_median']:,.0f}, "
        f"min {stats['user_length_min']:,}, max {stats['user_length_max']:,}",
    ]
    if "rows_read" in stats:
        lines.insert(0, f"read {stats['rows_read']:,} rows from {len(stats['files'])} file(s); "
                        f"{stats['rows_after_feedback']:,} kept by feedback '{stats['feedback']}'")
    windows = [key[len("last_in_last_"):] for key in stats if key.startswith("last_in_last_")]
    if windows:
        parts = [f"in last {w}: {stats[f'last_in_last_{w}']:.1%} / {stats[f'all_in_last_{w}']:.1%}" for w in windows]
        parts.append(f"anywhere in history: {stats['last_in_history']:.1%} / {stats['all_in_history']:.1%}")
        lines.append("next item already consumed by the user (last item / all items): " + "; ".join(parts))
    if "output" in stats:
        note = " (synthetic data: marker copied)" if stats.get("synthetic") else ""
        lines.append(f"wrote {stats['output']}{note}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Writing


# ".86" for 860 ms, ".005" for 5 ms, "" for 0 ms: appended to whole seconds, gives exact decimal seconds.
_MILLIS_SUFFIX = ["." + f"{m:03d}".rstrip("0") if m else "" for m in range(1000)]


def _format_seconds(time_ms):
    """Exact decimal seconds of integer ms: 1649408076860 -> '1649408076.86', 1649408076000 -> '1649408076'."""
    seconds, millis = np.divmod(np.asarray(time_ms, dtype=np.int64), 1000)
    return [f"{s}{_MILLIS_SUFFIX[m]}" for s, m in zip(seconds.tolist(), millis.tolist())]


def write_inter(path, user, item, time_ms, fields=None, block=200_000):
    """Write a RecBole ``.inter`` file atomically: ``user_id:token item_id:token timestamp:float [field:float ...]``."""
    fields = fields or {}
    header = "\t".join(["user_id:token", "item_id:token", "timestamp:float"] + [f"{n}:float" for n in fields])

    def write(handle):
        handle.write(header + "\n")
        for start in range(0, user.size, block):
            part = slice(start, start + block)
            columns = [user[part].tolist(), item[part].tolist(), _format_seconds(time_ms[part])]
            columns += [values[part].tolist() for values in fields.values()]
            if fields:
                handle.write("".join("\t".join(map(str, row)) + "\n" for row in zip(*columns)))
            else:
                handle.write("".join(f"{u}\t{i}\t{t}\n" for u, i, t in zip(*columns)))

    write_atomic(path, write)


# ----------------------------------------------------------------------------------------------------------------
# The conversion


def convert(raw_dir, out_dir, name="kuairand", version="1k", logs="standard", feedback="all", keep_fields=(),
            k_core_min=0, max_user_length=0, chunksize=DEFAULT_CHUNKSIZE, verbose=False):
    """Convert KuaiRand logs under ``raw_dir`` into ``<out_dir>/<name>/<name>.inter``; return the statistics dict.

    See the module docstring for the steps. ``k_core_min`` <= 1 and ``max_user_length`` <= 0 disable those filters.
    Raises :class:`KuaiRandFormatError` (nothing written) on malformed input or when no interaction is left.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
        raise KuaiRandFormatError(f"invalid --name '{name}': use letters, digits, '.', '_' and '-'")
    parse_feedback(feedback)
    keep_fields = parse_keep_fields(keep_fields)
    files = find_log_files(raw_dir, version=version, logs=logs)
    with step("reading " + ", ".join(str(path) for path in files), verbose):
        data, rows_read = read_logs(files, feedback, keep_fields, chunksize)
    rows_after_feedback = int(data["user_id"].size)
    if rows_after_feedback == 0:
        raise KuaiRandFormatError(f"no interactions left: no row of {len(files)} file(s) matches --feedback {feedback}")

    with step(f"sorting {rows_after_feedback:,} interactions by user and time", verbose):
        order = order_by_user_time(data["user_id"], data["time_ms"])
        for column in list(data):  # one column at a time, to keep the peak memory low
            data[column] = data[column][order]
        del order
    user, item, time_ms = data.pop("user_id"), data.pop("video_id"), data.pop("time_ms")
    fields = data
    with step("filtering (--max-user-length, --k-core)", verbose and (max_user_length > 0 or k_core_min > 1)):
        user, item, time_ms, fields = _take(latest_per_user(user, max_user_length), user, item, time_ms, fields)
        user, item, time_ms, fields = _take(k_core(user, item, k_core_min), user, item, time_ms, fields)
    if user.size == 0:
        raise KuaiRandFormatError(f"no interactions left after --k-core {k_core_min} (from {rows_after_feedback} rows)")
    user, item = remap_ids(user), remap_ids(item)

    stats = {"name": name, "files": [str(path) for path in files], "rows_read": rows_read,
             "feedback": str(feedback), "rows_after_feedback": rows_after_feedback}
    stats.update(sequence_stats(user, item, time_ms / 1000.0))

    marker = synthetic_description(raw_dir)
    folder = Path(out_dir) / name
    created = not folder.exists()
    had_marker = is_synthetic(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if marker is not None:
            write_marker(folder, marker)  # before the data: a crash in between errs on the side of "synthetic"
        with step(f"writing {folder / f'{name}.inter'}", verbose):
            write_inter(folder / f"{name}.inter", user, item, time_ms, fields)
    except BaseException:
        if marker is not None and not had_marker:
            remove_marker(folder)
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    if marker is None and had_marker:
        remove_marker(folder)  # real data replaced synthetic data: the marker is stale
    stats["output"] = str(folder / f"{name}.inter")
    stats["synthetic"] = marker is not None
    return stats


def _take(keep, user, item, time_ms, fields):
    if keep.all():
        return user, item, time_ms, fields
    return user[keep], item[keep], time_ms[keep], {column: values[keep] for column, values in fields.items()}


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
    try:
        stats = convert(args.raw_dir, args.out_dir, name=args.name, version=args.version, logs=args.logs,
                        feedback=args.feedback, keep_fields=args.keep_fields, k_core_min=args.k_core,
                        max_user_length=args.max_user_length, chunksize=args.chunksize, verbose=not args.quiet)
    except (KuaiRandFormatError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(format_stats(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
