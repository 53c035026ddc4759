"""Per-user ranking metrics and their 95% bootstrap intervals, for single models and paired differences.

With leave-one-out evaluation every test user has one target; a user's outcome is the target's 1-based rank in the
top ``max(topk)`` list (0 when it is not there). Hit@k, NDCG@k and MRR@k per user follow from it exactly as RecBole
computes them (one positive: NDCG@k = 1 / log2(rank + 1)), so their means equal RecBole's averaged metrics.
Intervals: percentile bootstrap over users; a paired difference resamples the same users for both models.
"""

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def ranks_from_topk(topk_rows):
    """Ranks from RecBole's ``rec.topk`` rows (positive flags of the top k, then the number of positives)."""
    flags = np.asarray(topk_rows)[:, :-1] > 0
    return np.where(flags.any(axis=1), flags.argmax(axis=1) + 1, 0)


def per_user_metrics(ranks, ks=(10, 20)):
    """``{"hit@k", "ndcg@k", "mrr@k": per-user values}`` from 1-based ranks (0 = outside the list)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    values = {}
    for k in ks:
        inside = (ranks > 0) & (ranks <= k)
        safe = np.where(inside, ranks, 1.0)
        values[f"hit@{k}"] = inside.astype(np.float64)
        values[f"ndcg@{k}"] = np.where(inside, 1.0 / np.log2(safe + 1.0), 0.0)
        values[f"mrr@{k}"] = np.where(inside, 1.0 / safe, 0.0)
    return values


def resample_indices(users, seed, resamples=RESAMPLES):
    """Bootstrap samples of user positions, (resamples, users); share them to pair models."""
    return np.random.default_rng(seed).integers(0, users, size=(resamples, users))


def interval(values, indices, level=LEVEL):
    """(mean, low, high): the mean of per-user ``values`` and its percentile bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    means = values[indices].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


def paired_difference(first, second, indices, level=LEVEL):
    """(mean, low, high) of ``first - second`` over the same users, with its bootstrap interval."""
    return interval(np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64), indices, level)


def verdict(difference):
    """'higher', 'lower' or 'comparable' (the interval contains 0) for a (mean, low, high) difference."""
    _, low, high = difference
    return "higher" if low > 0 else "lower" if high < 0 else "comparable"
