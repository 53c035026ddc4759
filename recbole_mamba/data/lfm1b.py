"""Convert LFM-1b listening events into a RecBole atomic ``.inter`` file, with tracks, albums or artists as items.

LFM-1b (Schedl, ICMR 2016; http://www.cp.jku.at/datasets/LFM-1b/) holds ~1.09 billion Last.fm listening events of
~120k users in ``LFM-1b_LEs.txt``: one event per line, five tab-separated integers, no header::

    user-id  artist-id  album-id  track-id  timestamp        (timestamp: Unix seconds)

Usage::

    python -m recbole_mamba.data.lfm1b --raw-dir ~/LFM-1b --out-dir dataset --level album

writes ``dataset/lfm1b-album/lfm1b-album.inter`` (``user_id:token  item_id:token  timestamp:float``; ``--name``
changes the name) and prints a summary. What the conversion does, in order:

1. find ``LFM-1b_LEs.txt`` under ``--raw-dir`` (recursively), or read ``--events FILE``;
2. stream it in chunks, checking that every line holds five integers, and keep the user, the ``--level`` id (the
   item: ``track``, ``album`` or ``artist``) and the timestamp of the events within ``--min-timestamp`` and
   ``--max-timestamp`` (inclusive; Unix seconds);
3. order every user's events by timestamp; events with equal timestamps keep their order in the file (stable);
4. drop duplicate plays: an event with the same user, item and timestamp as an earlier one is the same play logged
   twice (at the album or artist level: several tracks of one album or artist in the same second), so only the
   first is kept; ``--keep-duplicates`` keeps them all. Repeated plays at different times are all kept;
5. keep each user's latest ``--max-user-length`` events, then apply an iterative user/item ``--k-core``;
6. remap user and item ids to contiguous tokens ``1..n`` (in the order of the original ids) and write the
   timestamps as they are (whole seconds).

Memory and time: 12 bytes per kept event while reading (int32 ids and times, after the time filter), about 26 at
the peak (sorting, statistics), plus ~0.3 GB of chunk buffers. Measured on 10M generated events (225 MB of text):
0.46 GB above the interpreter and ~35 s on 2 cores, with or without ``--k-core``; so the whole file needs ~30 GB
and roughly an hour (extrapolated), a time range of it less. Malformed input (a missing file, a line without exactly five tab-separated integers, no event
left after the filters) raises :class:`~recbole_mamba.data.converter_common.RawDataError` with a one-line message
naming the file and the 1-based line number, before anything is written; the ``.inter`` file is replaced
atomically. A ``SYNTHETIC`` marker beside the events file is copied to the output folder
(:mod:`~recbole_mamba.data.synthetic_marker`). The generic steps are shared with the KuaiRand converter
(:mod:`recbole_mamba.data.converter_common`).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from recbole_mamba.data.converter_common import (
    RawDataError,
    check_name,
    concatenate_columns,
    first_of_duplicates,
    read_first_line,
    read_int_chunks,
    run_converter,
    select,
    shorten_and_core,
    sort_by_user_time,
    write_dataset,
)
from recbole_mamba.data.converter_common import format_stats as format_sequence_stats
from recbole_mamba.progress import step

EVENTS_FILE = "LFM-1b_LEs.txt"
LFM1B_COLUMNS = ("user-id", "artist-id", "album-id", "track-id", "timestamp")
LEVELS = {"track": "track-id", "album": "album-id", "artist": "artist-id"}  # --level -> the item's column
DEFAULT_CHUNKSIZE = 2_000_000
READ_FIX = f"each line of {EVENTS_FILE} holds 5 tab-separated integers: {' '.join(LFM1B_COLUMNS)}"


def find_events_file(raw_dir):
    """The one ``LFM-1b_LEs.txt`` under ``raw_dir`` (searched recursively)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise RawDataError(raw_dir, "raw directory does not exist", f"pass the folder holding {EVENTS_FILE}")
    found = sorted(path for path in raw_dir.rglob(EVENTS_FILE) if path.is_file())
    if not found:
        raise RawDataError(raw_dir, f"no {EVENTS_FILE} (searched recursively)",
                           "pass the folder of the unpacked LFM-1b download, or the file with --events")
    if len(found) > 1:
        raise RawDataError(found[1], f"a second {EVENTS_FILE} (besides {found[0]})", "pick one with --events")
    return found[0]


def read_events(path, level="track", min_timestamp=None, max_timestamp=None, chunksize=DEFAULT_CHUNKSIZE):
    """Read the events file ``path`` in chunks into ``{"user": , "item": , "time": }`` integer arrays (file order),
    keeping the ``level`` id as the item and the events with ``min_timestamp <= timestamp <= max_timestamp`` (either
    bound ``None``: open). Returns ``(columns, rows_read)``."""
    path = Path(path)
    if not path.is_file():
        raise RawDataError(path, "no such file", f"pass the path of {EVENTS_FILE} with --events")
    first = read_first_line(path, READ_FIX)
    if not first:
        raise RawDataError(f"{path}: line 1", "empty file", READ_FIX)
    fields = len(first.rstrip("\r\n").split("\t"))
    if fields != len(LFM1B_COLUMNS):
        raise RawDataError(f"{path}: line 1", f"expected {len(LFM1B_COLUMNS)} tab-separated fields, saw {fields}",
                           READ_FIX)
    keep = ("user-id", LEVELS[level], "timestamp")
    parts = {name: [] for name in keep}
    rows_read = 0
    for arrays, rows in read_int_chunks(path, LFM1B_COLUMNS, keep, chunksize, READ_FIX, sep="\t", header=None,
                                        names=list(LFM1B_COLUMNS)):
        rows_read += rows
        time = arrays["timestamp"]
        if min_timestamp is not None or max_timestamp is not None:
            in_range = np.ones(time.size, dtype=bool)
            if min_timestamp is not None:
                in_range &= time >= min_timestamp
            if max_timestamp is not None:
                in_range &= time <= max_timestamp
            arrays = {name: values[in_range] for name, values in arrays.items()}
        for name in keep:
            parts[name].append(arrays[name])
    columns = concatenate_columns(parts)
    return {"user": columns["user-id"], "item": columns[LEVELS[level]], "time": columns["timestamp"]}, rows_read


def convert(events, out_dir, name=None, level="track", k_core_min=0, max_user_length=0, min_timestamp=None,
            max_timestamp=None, keep_duplicates=False, chunksize=DEFAULT_CHUNKSIZE, verbose=False):
    """Convert the LFM-1b events file ``events`` into ``<out_dir>/<name>/<name>.inter`` (``name``: ``lfm1b-<level>``
    by default); return the statistics dict.

    See the module docstring for the steps. ``k_core_min`` <= 1 and ``max_user_length`` <= 0 disable those filters.
    Raises :class:`~recbole_mamba.data.converter_common.RawDataError` (nothing written) on malformed input or when no
    event is left.
    """
    if level not in LEVELS:
        raise RawDataError("--level", f"unknown level '{level}'", f"choose one of {', '.join(LEVELS)}")
    name = check_name(name or f"lfm1b-{level}")
    if min_timestamp is not None and max_timestamp is not None and min_timestamp > max_timestamp:
        raise RawDataError("--min-timestamp", f"{min_timestamp} is after --max-timestamp {max_timestamp}",
                           "swap them")
    with step(f"reading {events}", verbose):
        rows, rows_read = read_events(events, level, min_timestamp, max_timestamp, chunksize)
    rows_in_range = int(rows["user"].size)
    if rows_in_range == 0:
        bounds = {"--min-timestamp": min_timestamp, "--max-timestamp": max_timestamp}
        shown = " and ".join(f"{flag} {value}" for flag, value in bounds.items() if value is not None)
        raise RawDataError(events, f"none of its {rows_read:,} events meets {shown}", "widen the time range")

    with step(f"sorting {rows_in_range:,} events by user and time", verbose):
        sort_by_user_time(rows, "user", "time")
    user, item, time, fields = rows["user"], rows["item"], rows["time"], {}
    del rows
    if not keep_duplicates:
        user, item, time, fields = select(first_of_duplicates(user, item, time), user, item, time, fields)
    duplicates = rows_in_range - int(user.size)
    user, item, time, fields = shorten_and_core(user, item, time, fields, max_user_length, k_core_min, verbose)
    if user.size == 0:
        raise RawDataError("--k-core", f"no event left after --k-core {k_core_min} (from {rows_in_range:,})",
                           "lower --k-core")

    stats = {"name": name, "events": str(events), "level": level, "rows_read": rows_read,
             "rows_in_time_range": rows_in_range, "duplicates_dropped": duplicates}
    stats.update(write_dataset(out_dir, name, events, user, item, time, fields, "s", verbose))
    return stats


def format_stats(stats):
    """Human-readable multi-line summary of :func:`convert`'s statistics."""
    return format_sequence_stats(stats, [
        f"read {stats['rows_read']:,} events from {stats['events']}; {stats['rows_in_time_range']:,} in the time "
        f"range; {stats['duplicates_dropped']:,} duplicate plays dropped; items are {stats['level']}s",
    ])


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_mamba.data.lfm1b",
        description="Convert LFM-1b listening events into a RecBole atomic .inter file "
                    "(<out-dir>/<name>/<name>.inter).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--raw-dir", help=f"folder holding {EVENTS_FILE} (searched recursively)")
    source.add_argument("--events", help=f"the events file itself ({EVENTS_FILE})")
    parser.add_argument("--out-dir", required=True, help="RecBole data_path: the dataset goes to OUT_DIR/NAME/")
    parser.add_argument("--level", choices=tuple(LEVELS), default="track",
                        help="what an item is: the track (default), the album or the artist")
    parser.add_argument("--name", help="output dataset name (default: lfm1b-LEVEL)")
    parser.add_argument("--k-core", type=int, default=0, metavar="N",
                        help="iterative k-core: keep users and items with at least N interactions (default: off)")
    parser.add_argument("--max-user-length", type=int, default=0, metavar="N",
                        help="keep only each user's latest N interactions (default: all)")
    parser.add_argument("--min-timestamp", type=int, metavar="SECONDS", help="drop events before this Unix time")
    parser.add_argument("--max-timestamp", type=int, metavar="SECONDS", help="drop events after this Unix time")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="keep events repeating an earlier one's user, item and timestamp (default: dropped)")
    parser.add_argument("--chunksize", type=int, default=DEFAULT_CHUNKSIZE, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)

    def run():
        events = Path(args.events) if args.events else find_events_file(args.raw_dir)
        return convert(events, args.out_dir, name=args.name, level=args.level, k_core_min=args.k_core,
                       max_user_length=args.max_user_length, min_timestamp=args.min_timestamp,
                       max_timestamp=args.max_timestamp, keep_duplicates=args.keep_duplicates,
                       chunksize=args.chunksize, verbose=not args.quiet)

    return run_converter(run, format_stats, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
