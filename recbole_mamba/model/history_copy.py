"""Repeat scores: a logit bonus for the items a user had before, learned as a function of how long ago.

A sequential model scores item v at position t by ``h_t . e_v``: the context says which *kind* of item comes next,
but recalling *which* of hundreds of earlier items the user returns to, by identity, is what a fixed-size state (or
one embedding dot product) does poorly. With ``history_copy`` the logit of v at position t gets

    c_t(v) = sum_s a_t[b(t - s)]  +  log(1 + sum_s exp(w_t[b(t - s)]))

over the earlier occurrences s <= t of v (``b``: distance bucket, exact below 8, then two per doubling, up to
``DISTANCE_BUCKETS``). ``a_t`` (linear, may turn negative: "not what I just watched") and ``w_t`` (a saturating,
count-like term: "an old favourite") are per-bucket weights read from the context h_t by one linear layer, so how
much a repeat pays can depend on where the user is (e.g. just after a change of topic); at zero they are the
frequency prior ``log(1 + count)``. The dot product still chooses among the candidates by context, so the sum acts
like RepeatNet's repeat and explore modes (Ren et al., AAAI 2019) in logit space, at no cost to the catalogue: only
items in the history get a term.

Cost: O(L) per scored position (O(L^2) per sequence in all-position training, built in slices; with sampled
negatives only their scores are built),
``(hidden_size + 1) x 2 x DISTANCE_BUCKETS`` parameters; serving keeps the history's item ids.
"""

import torch
from torch import nn

DISTANCE_BUCKETS = 32  # exact distances 0..7, then two per doubling; the last from 8 * 2**11.5 (23,171) on
EXACT_DISTANCES = 8


def distance_bucket(distance):
    """Bucket of distances >= 0: the distance below ``EXACT_DISTANCES``, then two buckets per doubling."""
    octaves = torch.log2(distance.clamp(min=EXACT_DISTANCES).float() / EXACT_DISTANCES)
    logarithmic = EXACT_DISTANCES + (2 * octaves).floor().long()
    bucket = torch.where(distance < EXACT_DISTANCES, distance, logarithmic)
    return bucket.clamp(max=DISTANCE_BUCKETS - 1)


class HistoryCopy(nn.Module):
    """Repeat scores of a context's history (see the module docstring). Every method takes, per row, the context
    ``hidden`` (rows, H), the history ``item_seq`` (rows, T) (item ids, 0: padding) and the context's position in it
    ``positions`` (rows,): occurrences after it are not read."""

    def __init__(self, hidden_size):
        super().__init__()
        self.bucket_weights = nn.Linear(hidden_size, 2 * DISTANCE_BUCKETS)  # -> (a_t, w_t)
        nn.init.zeros_(self.bucket_weights.weight)  # start at the frequency prior
        nn.init.zeros_(self.bucket_weights.bias)

    def _occurrences(self, hidden, item_seq, positions):
        """Per history entry: (linear weight, count weight), both (rows, T), 0 after ``positions`` and at padding."""
        columns = torch.arange(item_seq.shape[1], device=item_seq.device)
        distance = positions[:, None] - columns
        seen = (distance >= 0) & (item_seq > 0)
        bucket = distance_bucket(columns)[distance.clamp_(min=0)]  # a lookup: distances are < T
        linear, count = self.bucket_weights(hidden).float().chunk(2, dim=-1)
        return linear.gather(1, bucket) * seen, count.gather(1, bucket).exp() * seen

    def _columns(self, hidden, item_seq, positions, column, width):
        """Repeat scores summed into ``width`` columns: history entry (i, j) goes to ``column[i, j]`` (``width``:
        to none) -> (rows, width)."""
        linear, count = self._occurrences(hidden, item_seq, positions)
        shape = (item_seq.shape[0], width + 1)
        linear_sum = linear.new_zeros(shape).scatter_add_(1, column, linear)[:, :width]
        count_sum = count.new_zeros(shape).scatter_add_(1, column, count)[:, :width]
        return linear_sum + torch.log1p(count_sum)

    def dense(self, hidden, item_seq, positions, start, stop):
        """Repeat scores of items ``start .. stop - 1``: (rows, stop - start), 0 for items not in the history."""
        inside = (item_seq >= start) & (item_seq < stop)
        return self._columns(hidden, item_seq, positions, torch.where(inside, item_seq - start, stop - start),
                             stop - start)

    def among(self, hidden, item_seq, positions, items):
        """Repeat scores of candidates ``items`` (N,) shared by all rows (repeats allowed): (rows, N)."""
        unique, inverse = torch.unique(items, return_inverse=True)
        column = torch.searchsorted(unique, item_seq).clamp_(max=len(unique) - 1)
        column = torch.where(unique[column] == item_seq, column, len(unique))
        return self._columns(hidden, item_seq, positions, column, len(unique))[:, inverse]

    def at(self, hidden, item_seq, positions, items):
        """Repeat scores of ``items`` (rows,) or (rows, k): the same shape."""
        linear, count = self._occurrences(hidden, item_seq, positions)
        candidates = items if items.dim() == 2 else items[:, None]
        same = (item_seq[:, None, :] == candidates[:, :, None]).to(linear.dtype)
        scores = (same * linear[:, None, :]).sum(-1) + torch.log1p((same * count[:, None, :]).sum(-1))
        return scores if items.dim() == 2 else scores[:, 0]

