"""Flat per-user sequence storage, and the example windows of RecBole's leave-one-out splits over it.

The interactions are stored once, sorted by user then time (:func:`group_by_user`): user ``u``'s history is the flat
range ``offsets[u] : offsets[u + 1]``. An example is a window of flat positions: inputs ``[start, end)``, its (last)
target at ``end``, and in ``seq2seq`` mode ``loss_start``, the first target that gets loss. :func:`split_windows`
gives the windows of the train / valid / test splits in RecBole's order; :func:`window_index` and
:func:`gather_windows` turn windows into padded ``(B, L)`` batches.
"""

import numpy as np
import torch

TRAIN_MODES = ("prefix", "seq2seq")

# Hidden columns of the split example tables (never part of a batch).
START = "__lifelong_start__"  # flat index of the first input item of the example
END = "__lifelong_end__"  # flat index of the example's (last) target; the inputs are [START, END)
LOSS_START = "__lifelong_loss_start__"  # seq2seq: flat index of the first target that gets loss

# eval_args.split LS modes -> the held-out phases, in time order (RecBole's leave_one_out).
HELD_OUT_PHASES = {"valid_and_test": ("valid", "test"), "valid_only": ("valid",), "test_only": ("test",)}


def segment_arange(counts):
    """``concatenate([arange(c) for c in counts])``, vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum()), dtype=np.int64) - starts


def group_by_user(users, times, user_num):
    """The order that sorts rows by user, then time, and each user's offsets into it (``user_num + 1``).

    RecBole sorts by [user, time] with two stable argsorts (time first): the same order, ties in file order.
    """
    order = np.argsort(times, kind="stable")
    order = order[np.argsort(users[order], kind="stable")]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=user_num))]).astype(np.int64)
    return order, offsets


def split_windows(offsets, times, held_out, train_mode, max_len, stride):
    """Windows ``{phase: (starts, ends, loss_starts)}`` of train / valid / test, in RecBole's order.

    ``times`` are the flat times, ``held_out`` the phases of :data:`HELD_OUT_PHASES`. Valid and test hold RecBole's
    examples (the latest ``max_len`` items before the target); so does train in ``prefix`` mode, in ``seq2seq`` mode
    it holds :func:`seq2seq_windows`. ``loss_starts`` is ``None`` except for ``seq2seq`` training windows.
    """
    rows = np.maximum(np.diff(offsets) - 1, 0)  # RecBole's augmented rows of each user: one per non-first interaction
    users = _split_order(offsets, times, np.flatnonzero(rows > 0))
    held = np.minimum(len(held_out), rows[users] - 1)  # RecBole leaves out at most rows - 1
    train_rows = rows[users] - held
    # A user's held-out rows are its last `held` targets; they go to the last `held` held-out phases.
    windows = {phase: _prefix_windows(np.zeros(0, np.int64), np.zeros(0, np.int64), max_len)
               for phase in ("valid", "test")}
    for k, phase in enumerate(held_out):
        behind = len(held_out) - k  # this phase takes the target `behind` positions before the end (1 = last)
        has = held >= behind
        windows[phase] = _prefix_windows(offsets[users[has] + 1] - behind, offsets[users[has]], max_len)
    if train_mode == "prefix":
        ends = np.repeat(offsets[users] + 1, train_rows) + segment_arange(train_rows)
        windows["train"] = _prefix_windows(ends, np.repeat(offsets[users], train_rows), max_len)
    else:
        windows["train"] = seq2seq_windows(offsets[users], train_rows, max_len, stride)
    return windows


def _split_order(offsets, times, users):
    """Users in RecBole's split order.

    RecBole sorts the augmented rows (uid-major, time-sorted per user) by target time, stably, then groups them by
    user in order of first appearance: a user's first row is its second interaction, so users come ordered by
    (time of their second interaction, user id).
    """
    return users[np.argsort(times[offsets[users] + 1], kind="stable")]


def _prefix_windows(ends, user_starts, max_len):
    """One example per target ``ends[i]``: its inputs are the latest ``max_len`` items of its user before it."""
    ends = np.asarray(ends, dtype=np.int64)
    return np.maximum(user_starts, ends - max_len), ends, None


def seq2seq_windows(user_starts, train_rows, max_len, stride):
    """Windows over each user's training targets (relative positions ``1 .. train_rows``), oldest first.

    Window ``k`` (0 = latest) has its last target at ``b_k = train_rows - k * stride`` and inputs
    ``[max(0, b_k - L), b_k)``; windows are added until one starts at the user's first item. Each target gets
    loss in the oldest window holding it: window ``k`` from ``max(a_k + 1, b_{k+1} + 1)``, the oldest from
    ``a_k + 1``.
    """
    c = train_rows.astype(np.int64)
    # number of windows: until one starts at 0, and only while the last target is a real one (b_k >= 1)
    n_windows = np.minimum(-(-np.maximum(c - max_len, 0) // stride) + 1, (c - 1) // stride + 1)
    k = np.repeat(n_windows, n_windows) - 1 - segment_arange(n_windows)  # oldest window first
    last = np.repeat(c, n_windows) - k * stride
    first = np.maximum(last - max_len, 0)
    oldest = k == np.repeat(n_windows, n_windows) - 1
    loss_first = np.where(oldest, first + 1, np.maximum(first + 1, last - stride + 1))
    base = np.repeat(user_starts, n_windows)
    return base + first, base + last, base + loss_first


def target_positions(ends, loss_starts=None):
    """Flat positions of the targets that windows train or evaluate (each once)."""
    if loss_starts is None:
        return ends
    counts = ends - loss_starts + 1
    return np.repeat(loss_starts, counts) + segment_arange(counts)


def window_index(start, length, max_len):
    """Flat indices ``(B, max_len)`` of right-padded windows ``[start, start + length)`` (0 at padding) and the
    padding mask (True = padding)."""
    columns = torch.arange(max_len)
    padding = columns.unsqueeze(0) >= length.unsqueeze(1)
    return (start.unsqueeze(1) + columns.unsqueeze(0)).masked_fill_(padding, 0), padding


def gather_windows(values, index, padding):
    """``values[index]`` as ``(B, L, *values.shape[1:])`` with 0 where ``padding`` (RecBole's padding value)."""
    out = values.index_select(0, index.view(-1)).view(index.shape + values.shape[1:])
    return out.masked_fill_(padding.view(padding.shape + (1,) * (out.dim() - 2)), 0)
