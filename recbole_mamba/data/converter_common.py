"""What the raw-log converters (:mod:`~recbole_mamba.data.kuairand`, :mod:`~recbole_mamba.data.lfm1b`) share.

Streaming integer columns out of a large delimited file with one-line errors that name the file and line; ordering
rows by user and time; the ``--max-user-length``, ``--k-core`` and duplicate filters; contiguous ids; sequence
statistics; and writing ``<out_dir>/<name>/<name>.inter`` atomically, with the ``SYNTHETIC`` marker copied from the
raw folder (or a stale one removed). Every function works on parallel arrays: one row per index.
"""

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_mamba.atomic_file import write_atomic
from recbole_mamba.data.synthetic_marker import is_synthetic, remove_marker, synthetic_description, write_marker
from recbole_mamba.errors import InputError
from recbole_mamba.progress import step

REPEAT_WINDOWS = (50, 2048)  # history windows reported by the "next item seen before" statistics


class RawDataError(InputError):
    """Bad or missing raw data, one line: ``<file>: line <n>: <problem>; <fix>`` (or an option instead of a file)."""


def check_name(name, error=RawDataError):
    """``name`` if it is a safe dataset (folder and file) name, else ``error``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
        raise error("--name", f"invalid dataset name '{name}'", "use letters, digits, '.', '_' and '-'")
    return name


# ----------------------------------------------------------------------------------------------------------------
# Reading


def read_first_line(path, fix, error=RawDataError):
    """The first line of the text file ``path`` ('' for an empty file); ``error`` with ``fix`` if it is not UTF-8."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return handle.readline()
    except UnicodeDecodeError as err:
        raise error(path, f"not a UTF-8 text file ({err.reason} at byte {err.start})", fix) from None


def read_int_chunks(path, read, keep, chunksize, fix, first_line=0, error=RawDataError, **options):
    """Yield ``({column: int array}, rows)`` per chunk of ``chunksize`` rows of the delimited text file ``path``.

    Every value of the ``read`` columns must be an integer; the arrays of the ``keep`` columns come back, int32
    where a chunk's values fit. ``first_line``: lines before the first row (a header). A bad value or row raises
    ``error`` naming ``path`` and the 1-based line, with ``fix``. ``options`` go to :func:`pandas.read_csv`.
    """
    line = first_line  # lines consumed so far
    try:
        reader = pd.read_csv(path, chunksize=chunksize, skip_blank_lines=False, index_col=False,
                             encoding="utf-8-sig", low_memory=False, **options)
        with reader:
            for chunk in reader:
                for name in read:
                    bad = _first_bad_row(chunk[name])
                    if bad is not None:
                        where = f"{path}: line {line + bad + 1}"
                        raise error(where, f"{_describe(chunk[name].iloc[bad])} in column '{name}'", fix)
                line += len(chunk)
                yield {name: _compact(chunk[name].to_numpy(dtype=np.int64)) for name in keep}, len(chunk)
    except pd.errors.ParserError as err:
        message = " ".join(str(err).split())
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
        if not found:
            raise error(path, message, fix) from None
        expected, bad_line, saw = found.groups()
        raise error(f"{path}: line {bad_line}", f"expected {expected} fields, saw {saw}", fix) from None
    except UnicodeDecodeError as err:
        raise error(path, f"not a UTF-8 text file ({err.reason} at byte {err.start})", fix) from None


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
    """``values`` as int32 when every value fits (ids, flags), else int64 (times in ms)."""
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


def concatenate_columns(parts):
    """``{column: one array}`` from ``{column: [the chunks' arrays]}`` (int32 when empty), emptying ``parts``
    column by column so that the chunks and the whole are not all held at once."""
    columns = {}
    for name in list(parts):
        chunks = parts.pop(name)
        columns[name] = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    return columns


# ----------------------------------------------------------------------------------------------------------------
# Ordering, filtering, remapping


def sort_by_user_time(columns, user, time):
    """Group the rows of the dict of arrays ``columns`` by its ``user`` array and order each user's rows by its
    ``time`` array; ties keep their order (stable). In place, one array at a time to keep the peak memory low."""
    order = np.lexsort((columns[time], columns[user]))
    for name in list(columns):
        columns[name] = columns[name][order]


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
    user_codes, item_codes = remap_ids(user), remap_ids(item)
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


def first_of_duplicates(user, item, time):
    """Boolean mask over rows grouped by user in time order that drops every row repeating an earlier row's user,
    item and time (rows of one user at one time are adjacent, in any item order)."""
    keep = np.ones(user.size, dtype=bool)
    same_time = (user[1:] == user[:-1]) & (time[1:] == time[:-1])
    tied = np.flatnonzero(np.r_[same_time, False] | np.r_[False, same_time])  # rows sharing their user and time
    if tied.size:
        tied = tied[np.lexsort((item[tied], time[tied], user[tied]))]  # stable: the first in input order first
        repeat = (user[tied[1:]] == user[tied[:-1]]) & (time[tied[1:]] == time[tied[:-1]]) & \
                 (item[tied[1:]] == item[tied[:-1]])
        keep[tied[1:][repeat]] = False
    return keep


def shorten_and_core(user, item, time, fields, max_user_length, k_core_min, verbose=False):
    """Each user's latest ``max_user_length`` rows (<= 0: all), then the iterative ``k_core_min``-core (<= 1: off),
    of rows grouped by user in time order; ``fields``: a dict of more arrays. Returns the four, filtered."""
    with step("filtering (--max-user-length, --k-core)", verbose and (max_user_length > 0 or k_core_min > 1)):
        user, item, time, fields = select(latest_per_user(user, max_user_length), user, item, time, fields)
        return select(k_core(user, item, k_core_min), user, item, time, fields)


def select(keep, user, item, time, fields):
    """The rows of ``keep`` (a boolean mask) of ``user``, ``item``, ``time`` and each array of the dict ``fields``."""
    if keep.all():
        return user, item, time, fields
    return user[keep], item[keep], time[keep], {name: values[keep] for name, values in fields.items()}


def remap_ids(values):
    """Contiguous ids ``1..n`` in the order of the original ids (0 stays free for padding)."""
    if _dense(values):  # a table over the id range: less memory and time than sorting
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        return np.cumsum(present, dtype=np.int32 if present.size < np.iinfo(np.int32).max else np.int64)[values]
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
    stats = {}
    if user.size == 0:
        return stats
    # Stable sort by (user, item): rows of one user and item stay in time order, so each row's predecessor in
    # this order is the item's previous occurrence in the user's history.
    index = np.int32 if user.size < np.iinfo(np.int32).max else np.int64  # row numbers: 4 bytes where they fit
    pairs = np.lexsort((item, user)).astype(index)
    same_user, same_item = user[pairs], item[pairs]
    repeat = (np.flatnonzero((same_user[1:] == same_user[:-1]) & (same_item[1:] == same_item[:-1])) + 1).astype(index)
    del same_user, same_item
    gap = pairs[repeat] - pairs[repeat - 1]  # rows since the previous occurrence, for each repeated row
    last = np.r_[user[1:] != user[:-1], True]  # each user's last row
    gap_of_last = gap[last[pairs[repeat]]]
    del pairs, repeat
    for prefix, gaps, rows in (("last", gap_of_last, int(np.count_nonzero(last))), ("all", gap, user.size)):
        for w in windows:
            stats[f"{prefix}_in_last_{w}"] = int(np.count_nonzero(gaps <= w)) / rows
        stats[f"{prefix}_in_history"] = gaps.size / rows
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


def _dense(values):
    """Whether ``values`` are non-negative integers whose range is at most a few times their number."""
    return bool(values.size and values.dtype.kind in "iu" and 0 <= values.min()
                and values.max() < 4 * values.size + 1024)


def _count_distinct(values):
    if _dense(values):
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


def format_stats(stats, first_lines=()):
    """Human-readable multi-line summary of a conversion's statistics, after ``first_lines`` (what was read)."""
    lines = list(first_lines) + [
        f"{stats.get('name', 'dataset')}: {stats['users']:,} users, {stats['items']:,} items, "
        f"{stats['interactions']:,} interactions",
        f"user length: mean {stats['user_length_mean']:,.1f}, median {stats['user_length_median']:,.0f}, "
        f"min {stats['user_length_min']:,}, max {stats['user_length_max']:,}",
    ]
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
TIME_UNITS = {"ms": 1000, "s": 1}  # time unit -> units per second


def _format_seconds(time, time_unit="ms"):
    """Exact decimal seconds of integer times: 1649408076860 ms -> '1649408076.86', 1649408076 s -> '1649408076'."""
    if time_unit == "s":
        return np.asarray(time).tolist()
    seconds, millis = np.divmod(np.asarray(time, dtype=np.int64), 1000)
    return [f"{s}{_MILLIS_SUFFIX[m]}" for s, m in zip(seconds.tolist(), millis.tolist())]


def write_inter(path, user, item, time, fields=None, time_unit="ms", block=200_000):
    """Write a RecBole ``.inter`` file atomically: ``user_id:token item_id:token timestamp:float [field:float ...]``;
    ``time`` holds integers in ``time_unit`` (``ms`` or ``s``), written as exact decimal seconds."""
    fields = fields or {}
    header = "\t".join(["user_id:token", "item_id:token", "timestamp:float"] + [f"{n}:float" for n in fields])

    def write(handle):
        handle.write(header + "\n")
        for start in range(0, user.size, block):
            part = slice(start, start + block)
            columns = [user[part].tolist(), item[part].tolist(), _format_seconds(time[part], time_unit)]
            columns += [values[part].tolist() for values in fields.values()]
            if fields:
                handle.write("".join("\t".join(map(str, row)) + "\n" for row in zip(*columns)))
            else:
                handle.write("".join(f"{u}\t{i}\t{t}\n" for u, i, t in zip(*columns)))

    write_atomic(path, write)


def write_dataset(out_dir, name, source, user, item, time, fields=None, time_unit="ms", verbose=False):
    """Remap ``user`` and ``item`` (rows grouped by user in time order) to ``1..n``, in place (a copy would cost
    8 bytes per row at the peak), and write them to ``<out_dir>/<name>/<name>.inter`` (:func:`write_inter`); return
    their :func:`sequence_stats` with ``output`` and ``synthetic``.

    A ``SYNTHETIC`` marker beside the raw data ``source`` (a folder or a file in it) is copied to the output folder;
    a marker already there is removed when the data is real. On an error the folder is left as it was.
    """
    user[...] = remap_ids(user)
    item[...] = remap_ids(item)
    stats = sequence_stats(user, item, time / float(TIME_UNITS[time_unit]))
    marker = synthetic_description(source)
    folder = Path(out_dir) / name
    created = not folder.exists()
    had_marker = is_synthetic(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if marker is not None:
            write_marker(folder, marker)  # before the data: a crash in between errs on the side of "synthetic"
        with step(f"writing {folder / f'{name}.inter'}", verbose):
            write_inter(folder / f"{name}.inter", user, item, time, fields, time_unit)
    except BaseException:
        if marker is not None and not had_marker:
            remove_marker(folder)
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    if marker is None and had_marker:
        remove_marker(folder)  # real data replaced synthetic data: the marker is stale
    stats.update(output=str(folder / f"{name}.inter"), synthetic=marker is not None)
    return stats


def run_converter(convert, format_stats, quiet=False):
    """A converter's command line: run ``convert()``, print ``format_stats`` of its statistics (unless ``quiet``), or
    one line ``error: ...`` for bad input; returns the exit status (0, or 2 for bad input)."""
    try:
        stats = convert()
    except (InputError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if not quiet:
        print(format_stats(stats))
    return 0
