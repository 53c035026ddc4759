"""Deterministic SYNTHETIC KuaiRand-format logs with lifelong histories and long-range structure.

The real KuaiRand logs (https://kuairand.com) are large and not bundled. This module writes raw logs in the same
format (the 19 integer columns, the same file names, e.g. ``log_standard_4_08_to_4_21_1k.csv``), so that
:mod:`recbole_mamba.data.kuairand` converts them exactly as it converts the real ones. The data is NOT real
KuaiRand: every folder made from it carries a ``SYNTHETIC`` marker file (:mod:`recbole_mamba.data.synthetic_marker`).

Design: why a long context helps here and a short one does not
--------------------------------------------------------------
* Items fall into ``clusters`` topics (40 of 75 items by default). Every user has 5-10 latent *interests*
  (topics, chosen by topic popularity) with skewed weights, and for every interest a private set of 20-50
  *favourite* items of that topic (drawn uniformly from the topic, so they are user-specific, not just popular).
* A user's history is a chain of *segments* (about 30 items each). A segment stays on one interest; the next
  segment switches to another interest (never the same one twice in a row), so an interest comes back after
  hundreds to thousands of interactions.
* Inside a segment each step is, with p = 0.08, a globally trending item; else, with p = 0.75, a favourite of the
  current interest not yet watched in this segment (the k-th favourite with weight 1 / k**1.2); otherwise a
  popular item of the topic (flat Zipf 0.5) not yet watched in this segment. Items never repeat inside a segment.
* Consequence: the next item is usually a favourite re-watched from an *earlier* segment of the same interest,
  far back in the history, and rarely one of the last ~50 items (the current segment and one of another topic).
  A model seeing only the last 50 items can tell the topic but not the user's favourites; a model reading the
  whole history can find them. :func:`generate` measures this two ways:

  - :func:`recbole_mamba.data.converter_common.repeat_stats`: for each user's last item, how often it occurs among the
    last 50 items / the last 2048 / anywhere before it. Bundled data: 8% / 86% / 88%.
  - :func:`context_baselines`: hit rate @10 of two rule-based guesses that know the topics: the topic's most
    popular items outside the last 50 (*short*) versus the user's most frequent items of that topic in the whole
    history (*long*). Bundled data, on each user's last 100 items: 20% (short) versus 40% (long).

Other columns are plausible, not calibrated: ``time_ms`` increases per user (play time plus a short pause inside a
segment, idle gaps between segments, all within 2022-04-08..2022-05-08 Beijing time), ``date``/``hourmin`` follow
from it, ``duration_ms`` is per video, ``play_time_ms`` depends on how much the user likes the item, ``long_view``
follows KuaiRand's definition, click/like/follow/... are Bernoulli draws with rates that depend on the item's role,
``tab`` is drawn from a skewed distribution. In the 4_22..5_08 period about 1% of the feed slots are replaced by a
uniformly random video, written to ``log_random_*`` with ``is_rand = 1`` (KuaiRand's random exposure).

All randomness comes from one ``numpy.random.RandomState(seed)`` (numpy's frozen legacy generator, whose streams
do not change between numpy versions), so a seed gives byte-identical files.

Command line::

    python -m recbole_mamba.data.synthetic_kuairand --out /tmp/kuairand_raw              # raw logs only
    python -m recbole_mamba.data.synthetic_kuairand --out /tmp/kuairand_raw --dataset-dir dataset
                                                     # ... and convert them into dataset/kuairand/kuairand.inter
"""

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from recbole_mamba.data.converter_common import repeat_stats
from recbole_mamba.data.kuairand import KUAIRAND_COLUMNS, KuaiRandFormatError, convert, format_stats
from recbole_mamba.data.synthetic_marker import write_marker

BEIJING_OFFSET_MS = 8 * 3600 * 1000
PERIOD_START_MS = int(np.datetime64("2022-04-08T00:00:00", "ms").astype(np.int64)) - BEIJING_OFFSET_MS
PERIOD_SPLIT_MS = int(np.datetime64("2022-04-22T00:00:00", "ms").astype(np.int64)) - BEIJING_OFFSET_MS
PERIOD_END_MS = int(np.datetime64("2022-05-09T00:00:00", "ms").astype(np.int64)) - BEIJING_OFFSET_MS

# Roles of an interaction: the generator's ground truth, driving the feedback columns.
FAVOURITE, TOPIC, TRENDING, RANDOM = 0, 1, 2, 3
#                                 favourite topic trending random
PLAY_BETA_A = np.array([3.0, 1.6, 1.2, 0.8])
PLAY_BETA_B = np.array([1.5, 2.0, 2.5, 3.0])
P_CLICK = np.array([0.62, 0.36, 0.25, 0.15])
P_LIKE = np.array([0.06, 0.015, 0.01, 0.004])
P_FOLLOW = np.array([0.006, 0.002, 0.001, 0.0005])
P_COMMENT = np.array([0.008, 0.003, 0.002, 0.001])
P_FORWARD = np.array([0.004, 0.001, 0.001, 0.0005])
P_HATE = np.array([0.0002, 0.001, 0.002, 0.01])
P_PROFILE = np.array([0.03, 0.01, 0.008, 0.004])
TAB_VALUES = np.array([1, 0, 2, 4, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
TAB_WEIGHTS = np.array([0.55, 0.14, 0.1, 0.07, 0.04, 0.03, 0.02, 0.015, 0.01, 0.01, 0.005, 0.005, 0.005, 0.003, 0.002])


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of :func:`generate` (defaults: the bundled ``dataset/kuairand``)."""

    users: int = 100
    items: int = 3000
    clusters: int = 40
    seed: int = 2024
    version: str = "1k"  # file naming: 1k, 27k (standard logs split in part1/part2) or pure
    short_fraction: float = 0.2  # users with a short history ...
    short_length: tuple = (200, 1800)  # ... of this many feed interactions (log-uniform)
    long_fraction: float = 0.1  # users with a very long history ...
    long_length: tuple = (3000, 10000)  # ... (log-uniform); everyone else:
    lifelong_length: tuple = (2000, 2500)
    interests: tuple = (5, 10)  # interests per user (inclusive)
    interest_skew: tuple = (0.8, 0.15)  # interest weights: Dirichlet(alpha) mixed with a uniform share (floor)
    favourites: tuple = (20, 50)  # favourite items per interest (inclusive) ...
    favourite_zipf: float = 1.2  # ... of which the k-th is picked with weight 1 / k ** favourite_zipf
    segment_length: tuple = (8, 30, 120)  # min, mean, max length of a one-interest segment
    topic_zipf: float = 0.5  # popularity of items inside a topic: weight 1 / rank ** topic_zipf
    p_favourite: float = 0.75
    p_trending: float = 0.08
    random_exposure: float = 0.01  # share of 4_22..5_08 feed slots given to a random video (log_random_*)

    def describe(self):
        """One line for the ``SYNTHETIC`` marker: what made the data, and the options that differ from defaults."""
        changed = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                   if f.name not in ("users", "seed") and getattr(self, f.name) != f.default]
        options = " ".join([f"users={self.users}", f"seed={self.seed}"] + changed)
        return (f"SYNTHETIC KuaiRand-format data, not real KuaiRand: generated by "
                f"recbole_mamba.data.synthetic_kuairand ({options})")


def _zipf(n, exponent, rs):
    """Popularity weights ``1/rank**exponent`` over ``n`` entries in random order."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights[rs.permutation(n)]


def _draw(cumulative, u):
    """Index drawn from cumulative weights with a uniform number ``u`` in [0, 1)."""
    return min(int(np.searchsorted(cumulative, u * cumulative[-1], side="right")), cumulative.size - 1)


def _log_uniform(low, high, rs):
    return int(math.exp(rs.uniform(math.log(low), math.log(high))))


class _Catalog:
    """What all users share: topics (item clusters), popularity, video durations, original-looking ids."""

    def __init__(self, config, rs):
        self.size = config.items
        self.topic_items = np.array_split(rs.permutation(config.items), config.clusters)
        self.topic_cumulative = [np.cumsum(_zipf(len(items), config.topic_zipf, rs)) for items in self.topic_items]
        popularity = _zipf(config.clusters, 0.6, rs)
        self.topic_popularity = popularity / popularity.sum()
        self.trending_cumulative = np.cumsum(_zipf(config.items, 1.0, rs))
        self.duration_ms = np.clip(rs.lognormal(math.log(25_000), 0.7, config.items), 3_000, 600_000).astype(np.int64)
        self.video_ids = rs.choice(4_000_000, config.items, replace=False).astype(np.int64)
        self.user_ids = np.sort(rs.choice(27_285, config.users, replace=False)).astype(np.int64)

    def trending(self, u):
        return _draw(self.trending_cumulative, u)


def _user_length(config, rs):
    u = rs.random_sample()
    if u < config.short_fraction:
        return _log_uniform(*config.short_length, rs)
    if u < config.short_fraction + config.long_fraction:
        return _log_uniform(*config.long_length, rs)
    return _log_uniform(*config.lifelong_length, rs)


def _user_feed(config, catalog, length, rs):
    """One user's feed: item indices, roles and segment start positions (see the module docstring)."""
    k = min(rs.randint(config.interests[0], config.interests[1] + 1), len(catalog.topic_items))
    topics = rs.choice(len(catalog.topic_items), size=k, replace=False, p=catalog.topic_popularity)
    alpha, floor = config.interest_skew
    weights = (1 - floor) * rs.dirichlet(np.full(k, alpha)) + floor / k
    favourites, favourite_weights = [], []
    for topic in topics:
        pool = catalog.topic_items[topic]
        size = min(rs.randint(config.favourites[0], config.favourites[1] + 1), pool.size)
        favourites.append(rs.choice(pool, size=size, replace=False))
        favourite_weights.append(1.0 / np.arange(1, size + 1) ** config.favourite_zipf)

    seg_min, seg_mean, seg_max = config.segment_length
    items = np.empty(length, dtype=np.int64)
    roles = np.empty(length, dtype=np.int64)
    starts = []
    uniforms = rs.random_sample((length, 6))
    t, interest = 0, -1
    while t < length:
        starts.append(t)
        seg = min(seg_min - 1 + rs.geometric(1.0 / (seg_mean - seg_min + 1)), seg_max, length - t)
        choice = weights.copy()
        if interest >= 0:
            choice[interest] = 0.0  # a new segment switches interest
        interest = _draw(np.cumsum(choice), rs.random_sample())
        pool, cumulative = catalog.topic_items[topics[interest]], catalog.topic_cumulative[topics[interest]]
        unwatched = np.ones(favourites[interest].size, dtype=bool)
        seen = set()
        for u in uniforms[t:t + seg]:
            item, role = -1, TOPIC
            if u[0] < config.p_trending:
                item, role = catalog.trending(u[1]), TRENDING
            elif u[0] < config.p_trending + config.p_favourite and unwatched.any():
                pick = _draw(np.cumsum(favourite_weights[interest] * unwatched), u[1])
                unwatched[pick] = False
                item, role = int(favourites[interest][pick]), FAVOURITE
            if item < 0 or item in seen:  # a popular item of the topic, not yet watched in this segment
                role = TOPIC
                for v in u[2:]:
                    item = int(pool[_draw(cumulative, v)])
                    if item not in seen:
                        break
                else:
                    fresh = [int(x) for x in pool if int(x) not in seen]
                    item = fresh[int(u[1] * len(fresh))] if fresh else item
            seen.add(item)
            items[t], roles[t] = item, role
            t += 1
    return items, roles, np.array(starts, dtype=np.int64)


def _feedback(roles, duration_ms, rs):
    """Play time and the feedback columns for interactions with the given roles."""
    n = roles.size
    play = rs.beta(PLAY_BETA_A[roles], PLAY_BETA_B[roles]) * 1.3 * duration_ms
    columns = {"play_time_ms": np.maximum(play, 200).astype(np.int64)}
    for name, rates in (("is_click", P_CLICK), ("is_like", P_LIKE), ("is_follow", P_FOLLOW),
                        ("is_comment", P_COMMENT), ("is_forward", P_FORWARD), ("is_hate", P_HATE),
                        ("is_profile_enter", P_PROFILE)):
        columns[name] = (rs.random_sample(n) < rates[roles]).astype(np.int64)
    columns["profile_stay_time"] = columns["is_profile_enter"] * rs.geometric(1 / 8.0, n).astype(np.int64)
    comment_view = (columns["is_comment"] == 1) | (rs.random_sample(n) < 0.03)
    columns["comment_stay_time"] = np.where(comment_view, rs.geometric(1 / 15.0, n), 0).astype(np.int64)
    tab_cumulative = np.cumsum(TAB_WEIGHTS)
    columns["tab"] = TAB_VALUES[[_draw(tab_cumulative, u) for u in rs.random_sample(n)]]
    return columns


def _timestamps(play_time_ms, segment_starts, rs):
    """Increasing ``time_ms``: play time plus a pause inside segments, random idle gaps before each segment."""
    n = play_time_ms.size
    step = play_time_ms + 500 + rs.exponential(1500.0, n).astype(np.int64)
    idle = (PERIOD_END_MS - PERIOD_START_MS) - int(step.sum()) - 3_600_000 - 1000 * segment_starts.size
    if idle <= 0:
        raise ValueError(f"a history of {n} interactions does not fit into the collection period")
    gaps = rs.dirichlet(np.ones(segment_starts.size + 1)) * idle
    offset = np.zeros(n, dtype=np.int64)
    offset[segment_starts] = np.floor(gaps[:-1]).astype(np.int64) + 1000
    previous_step = np.concatenate([[0], step[:-1]])
    return PERIOD_START_MS + np.cumsum(previous_step + offset)


def _date_hourmin(time_ms):
    """KuaiRand's ``date`` (YYYYMMDD) and ``hourmin`` (HH00), Beijing time."""
    local = (time_ms + BEIJING_OFFSET_MS).astype("datetime64[ms]")
    day = local.astype("datetime64[D]")
    hours = ((local - day) // np.timedelta64(1, "h")).astype(np.int64)
    date = np.char.replace(np.datetime_as_string(day), "-", "").astype(np.int64)
    return date, hours * 100


def generate_rows(config=SyntheticConfig()):
    """Generate every user's interactions.

    Returns ``(rows, feed)``: ``rows`` maps the 19 KuaiRand columns to int64 arrays (feed rows and random
    exposures, grouped by user in time order); ``feed`` holds ``user`` and ``item`` index arrays of the standard-log
    rows only, in the same order (what the default conversion keeps).
    """
    if config.version not in ("1k", "27k", "pure"):
        raise ValueError(f"unknown version '{config.version}': choose 1k, 27k or pure")
    rs = np.random.RandomState(config.seed)
    catalog = _Catalog(config, rs)
    users, feed_users, feed_items = [], [], []
    for index in range(config.users):
        length = _user_length(config, rs)
        items, roles, starts = _user_feed(config, catalog, length, rs)
        columns = _feedback(roles, catalog.duration_ms[items], rs)
        time_ms = _timestamps(columns["play_time_ms"], starts, rs)
        # KuaiRand's random exposure: in the second period a few feed slots show a uniformly random video instead.
        replaced = (time_ms >= PERIOD_SPLIT_MS) & (rs.random_sample(length) < config.random_exposure)
        random_items = rs.randint(0, config.items, length)
        random_columns = _feedback(np.full(length, RANDOM), catalog.duration_ms[random_items], rs)
        random_columns["play_time_ms"] = np.minimum(random_columns["play_time_ms"], columns["play_time_ms"])
        for name, values in random_columns.items():
            columns[name] = np.where(replaced, values, columns[name])
        items = np.where(replaced, random_items, items)
        duration = catalog.duration_ms[items]
        date, hourmin = _date_hourmin(time_ms)
        columns.update(
            user_id=np.full(length, catalog.user_ids[index]), video_id=catalog.video_ids[items], date=date,
            hourmin=hourmin, time_ms=time_ms, duration_ms=duration, is_rand=replaced.astype(np.int64),
            long_view=(columns["play_time_ms"] >= np.minimum(duration, 18_000)).astype(np.int64),
        )
        users.append({name: np.asarray(columns[name], dtype=np.int64) for name in KUAIRAND_COLUMNS})
        feed_users.append(np.full(int((~replaced).sum()), index))
        feed_items.append(items[~replaced])
    rows = {name: np.concatenate([user[name] for user in users]) for name in KUAIRAND_COLUMNS}
    topic = np.empty(config.items, dtype=np.int64)
    popularity = np.empty(config.items)
    for index, (items, cumulative) in enumerate(zip(catalog.topic_items, catalog.topic_cumulative)):
        topic[items] = index
        popularity[items] = np.diff(np.concatenate([[0.0], cumulative]))
    feed = {"user": np.concatenate(feed_users), "item": np.concatenate(feed_items), "topic": topic,
            "topic_popularity": popularity}
    return rows, feed


def context_baselines(feed, window=50, positions=100, k=10):
    """Hit rate @``k`` of two rule-based next-item guesses, to show that the long-range signal is real.

    Both know the ground-truth topic of each item and guess the topic of the next item from the last 5 items.
    *short*: the ``k`` most popular items of that topic outside the last ``window`` items (all a model reading
    ``window`` items can infer; items do not repeat inside a segment). *long*: the user's most frequent items of
    that topic from the whole history outside the last ``window``, topped up by popularity. Evaluated on each
    user's last item and on each user's last ``positions`` items. Returns a dict of hit rates.
    """
    user, item, topic, popularity = feed["user"], feed["item"], feed["topic"], feed["topic_popularity"]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    ends = np.r_[starts[1:], user.size]
    hits = {"short_last": [], "long_last": [], "short_recent": [], "long_recent": []}
    for start, end in zip(starts, ends):
        for t in range(max(start + 5, end - positions), end):
            current = np.bincount(topic[item[t - 5:t]]).argmax()
            recent = set(item[max(start, t - window):t].tolist())
            candidates = np.flatnonzero(topic == current)
            candidates = candidates[[c not in recent for c in candidates]]
            by_popularity = candidates[np.argsort(-popularity[candidates], kind="stable")]
            counts = np.bincount(item[start:max(start, t - window)], minlength=topic.size)[by_popularity]
            by_history = by_popularity[np.argsort(-counts, kind="stable")]
            for name, ranking in (("short", by_popularity), ("long", by_history)):
                hit = float(item[t] in ranking[:k])
                hits[f"{name}_recent"].append(hit)
                if t == end - 1:
                    hits[f"{name}_last"].append(hit)
    return {f"hr{k}_{name}": float(np.mean(values)) for name, values in hits.items()}


def log_file_names(version):
    """``{(kind, period, part): file name}`` of the logs of a KuaiRand ``version`` (part 0: not split)."""
    periods = ("4_08_to_4_21", "4_22_to_5_08")
    names = {}
    for period in periods:
        if version == "27k":
            for part in (1, 2):
                names[("standard", period, part)] = f"log_standard_{period}_27k_part{part}.csv"
        else:
            names[("standard", period, 0)] = f"log_standard_{period}_{version}.csv"
    names[("random", periods[1], 0)] = f"log_random_{periods[1]}_{version}.csv"
    return names


def _write_csv(path, rows, mask):
    header = ",".join(KUAIRAND_COLUMNS)
    table = np.column_stack([rows[name][mask] for name in KUAIRAND_COLUMNS])
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(header + "\n")
        np.savetxt(handle, table, fmt="%d", delimiter=",")


def generate(out_dir, config=SyntheticConfig()):
    """Write synthetic KuaiRand-format logs and a ``SYNTHETIC`` marker into ``out_dir``; return statistics.

    The statistics (a dict) give the rows per file, users/items/interactions of the standard logs and the
    long-range check of :func:`recbole_mamba.data.converter_common.repeat_stats` on them.
    """
    rows, feed = generate_rows(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    is_random = rows["is_rand"] == 1
    second_period = rows["date"] >= 20220422
    user_rank = np.searchsorted(np.unique(rows["user_id"]), rows["user_id"])
    first_half = user_rank < (config.users + 1) // 2
    files = {}
    for (kind, period, part), name in log_file_names(config.version).items():
        mask = is_random if kind == "random" else ~is_random & (second_period == (period == "4_22_to_5_08"))
        if part:
            mask = mask & (first_half == (part == 1))
        _write_csv(out_dir / name, rows, mask)
        files[name] = int(mask.sum())
    write_marker(out_dir, config.describe())
    lengths = np.bincount(feed["user"])
    stats = {"files": files, "users": int(lengths.size), "items": int(np.unique(feed["item"]).size),
             "interactions": int(feed["user"].size), "random_exposures": int(is_random.sum()),
             "user_length_mean": round(float(lengths.mean()), 2), "user_length_median": float(np.median(lengths)),
             "user_length_min": int(lengths.min()), "user_length_max": int(lengths.max())}
    stats.update(repeat_stats(feed["user"], feed["item"]))
    stats.update(context_baselines(feed))
    return stats


def format_generator_stats(stats):
    """Human-readable summary of :func:`generate`'s statistics."""
    lines = [format_stats(dict(stats, name="standard logs")),
             f"rule-based HR@10 of the next item, knowing the topics (each user's last item / last 100 items): "
             f"short context (popular items of the topic outside the last 50) {stats['hr10_short_last']:.1%} / "
             f"{stats['hr10_short_recent']:.1%}; long context (the user's own items of the topic, whole history) "
             f"{stats['hr10_long_last']:.1%} / {stats['hr10_long_recent']:.1%}"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Command line


def build_parser():
    defaults = SyntheticConfig()
    parser = argparse.ArgumentParser(
        prog="python -m recbole_mamba.data.synthetic_kuairand",
        description="Write SYNTHETIC KuaiRand-format raw logs (deterministic for a seed); optionally convert them "
                    "into a RecBole dataset with recbole_mamba.data.kuairand.",
    )
    parser.add_argument("--out", required=True, help="folder for the raw log CSVs (created if missing)")
    parser.add_argument("--users", type=int, default=defaults.users, help=f"default {defaults.users}")
    parser.add_argument("--items", type=int, default=defaults.items, help=f"catalog size, default {defaults.items}")
    parser.add_argument("--clusters", type=int, default=defaults.clusters, help=f"topics, default {defaults.clusters}")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"default {defaults.seed}")
    parser.add_argument("--version", choices=("1k", "27k", "pure"), default=defaults.version,
                        help="file naming of that KuaiRand version (default 1k)")
    parser.add_argument("--dataset-dir", help="also convert the logs into DATASET_DIR/NAME/NAME.inter (RecBole "
                                              "data_path), with the converter's defaults")
    parser.add_argument("--name", default="kuairand", help="dataset name for --dataset-dir (default kuairand)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = SyntheticConfig(users=args.users, items=args.items, clusters=args.clusters, seed=args.seed,
                             version=args.version)
    try:
        if min(config.users, config.clusters) < 1 or config.items < 2 * config.clusters:
            raise ValueError("need --users >= 1, --clusters >= 1 and --items >= 2 * --clusters")
        stats = generate(args.out, config)
        print(f"wrote {sum(stats['files'].values()):,} rows to {len(stats['files'])} files in {args.out} "
              f"({config.describe()})")
        print(format_generator_stats(stats))
        if args.dataset_dir:
            print(format_stats(convert(args.out, args.dataset_dir, name=args.name, version=config.version)))
    except (KuaiRandFormatError, ValueError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
