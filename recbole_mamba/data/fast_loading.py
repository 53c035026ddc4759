"""Faster, result-identical replacements for three steps of RecBole's dataset loading, as a mixin.

* :meth:`FastLoading._load_feat`: RecBole's own, with the atomic file parsed by pyarrow's CSV parser (pandas' C
  parser without pyarrow) instead of pandas' Python one: same values, several times faster, arrow-backed string
  columns (no Python object per token);
* :meth:`FastLoading._remap`: token columns are factorized in place (:func:`factorize_tokens`, no object-array copy)
  and the ``token -> id`` dict is built only on first use (:class:`TokenIdMap`);
* :meth:`FastLoading._filter_by_inter_num`: the iterative user/item interaction-count filter, vectorised.
"""

import collections.abc
import functools

import numpy as np
import pandas as pd
from recbole.data.dataset import dataset as recbole_dataset_module
from recbole.utils import FeatureType

from recbole_mamba.compat import ModuleView

try:
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError:
    pa = pc = None

# read_csv options replacing RecBole's engine="python"; the C parser needs round_trip for the same floats (pandas < 3).
if pa is not None:
    FAST_CSV_OPTIONS = {"engine": "pyarrow"}
elif int(pd.__version__.split(".")[0]) < 3:
    FAST_CSV_OPTIONS = {"engine": "c", "float_precision": "round_trip"}
else:
    FAST_CSV_OPTIONS = {"engine": "c"}


def read_csv_fast(read_csv, *args, engine=None, **kwargs):
    """``read_csv(*args, **kwargs)`` with :data:`FAST_CSV_OPTIONS` in place of the ``engine`` asked for."""
    return read_csv(*args, **kwargs, **FAST_CSV_OPTIONS)


class TokenIdMap(collections.abc.Mapping):
    """``token -> id`` for one remapped field, built on first use from the ``id -> token`` array.

    RecBole builds this dict eagerly for every token field; for millions of items it costs hundreds of MB that
    training never touches (only :meth:`~recbole.data.dataset.Dataset.token2id` reads it).
    """

    def __init__(self, id2token):
        self._id2token = id2token
        self._map = None

    def _mapping(self):
        if self._map is None:
            self._map = {token: i for i, token in enumerate(self._id2token)}
        return self._map

    def __getitem__(self, token):
        return self._mapping()[token]

    def __iter__(self):
        return iter(self._mapping())

    def __len__(self):
        return len(self._id2token)

    def __contains__(self, token):
        return token in self._mapping()


def factorize_tokens(tokens):
    """``pd.factorize`` of a token Series: codes by first appearance (-1 = missing) and the unique tokens.

    Arrow-backed strings are dictionary-encoded by pyarrow directly (about twice as fast as ``pd.factorize``).
    """
    try:
        array = tokens.array.__arrow_array__()
    except (ImportError, AttributeError, TypeError):  # not arrow-backed, or no pyarrow
        codes, uniques = pd.factorize(tokens)
        return codes.astype(np.int64), np.asarray(uniques, dtype=object)
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        empty = pa.array([], pa.dictionary(pa.int32(), pa.string()))
        encoded = encoded.combine_chunks() if encoded.num_chunks else empty
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False)


class FastLoading:
    """Mixin for a RecBole ``Dataset`` subclass (listed before it): the replacements of the module docstring."""

    def _load_feat(self, filepath, source):
        """RecBole's ``_load_feat``, its ``pd.read_csv`` call (as RecBole's dataset module sees it, with
        :mod:`recbole_mamba.compat`'s fixes) switched to :func:`read_csv_fast` for the duration of the call."""
        seen = recbole_dataset_module.pd
        recbole_dataset_module.pd = ModuleView(seen, read_csv=functools.partial(read_csv_fast, seen.read_csv))
        try:
            return super()._load_feat(filepath, source)
        finally:
            recbole_dataset_module.pd = seen

    def _filter_by_inter_num(self):
        """RecBole's iterative user/item interaction-count filter, with counts from ``value_counts`` (same result)."""
        if self.uid_field is None or self.iid_field is None:
            return
        user_interval = self._parse_intervals_str(self.config["user_inter_num_interval"])
        item_interval = self._parse_intervals_str(self.config["item_inter_num_interval"])
        if user_interval is None and item_interval is None:
            return
        for interval in (user_interval, item_interval):
            if interval is not None and len(interval) > 1:
                self.logger.warning("More than one interval of interaction number are given!")
        if self._accepts_all(user_interval, self.user_feat) and self._accepts_all(item_interval, self.item_feat):
            return  # e.g. RecBole's default "[0,inf)": nothing can be dropped
        while True:
            ban_users = self._ids_out_of_interval(self.uid_field, self.user_feat, user_interval)
            ban_items = self._ids_out_of_interval(self.iid_field, self.item_feat, item_interval)
            if len(ban_users) == 0 and len(ban_items) == 0:
                break
            if self.user_feat is not None:
                dropped = self.user_feat[self.uid_field].isin(ban_users)
                self.user_feat.drop(self.user_feat.index[dropped], inplace=True)
            if self.item_feat is not None:
                dropped = self.item_feat[self.iid_field].isin(ban_items)
                self.item_feat.drop(self.item_feat.index[dropped], inplace=True)
            inter = self.inter_feat
            dropped = inter[self.uid_field].isin(ban_users) | inter[self.iid_field].isin(ban_items)
            self.logger.debug(f"[{int(dropped.sum())}] dropped interactions.")
            self.inter_feat.drop(self.inter_feat.index[dropped.to_numpy()], inplace=True)

    @staticmethod
    def _accepts_all(interval, feat):
        """Whether no id can be out of ``interval``: it admits every count >= 1 (and 0, for ids only in ``feat``)."""
        if interval is None:
            return True
        lowest = 1 if feat is None else 0
        return any(
            right == np.inf and (left < lowest or (left == lowest and left_bracket == "["))
            for left_bracket, left, right, _ in interval
        ) and (feat is None or interval[0][1] <= 0)

    def _ids_out_of_interval(self, field, feat, interval):
        if interval is None:
            return []
        counts = self.inter_feat[field].value_counts(dropna=False, sort=False)
        within = np.asarray(self._within_intervals(counts.to_numpy(), interval), dtype=bool)
        within = np.broadcast_to(within, counts.shape)
        banned = list(counts.index[~within])
        if feat is not None:
            in_feat = feat[field].map(counts).fillna(0).to_numpy()
            banned += list(feat[field][in_feat < interval[0][1]])
        return banned

    def _remap(self, remap_list):
        """RecBole's remapping (ids by first appearance, 0 = [PAD]) factorizing token columns in place."""
        if not remap_list or any(ftype != FeatureType.TOKEN for _, _, ftype in remap_list):
            return super()._remap(remap_list)
        columns = [feat[field] for feat, field, _ in remap_list]
        tokens = columns[0] if len(columns) == 1 else pd.concat(columns, ignore_index=True)
        codes, uniques = factorize_tokens(tokens)
        id2token = np.concatenate([np.array(["[PAD]"]), uniques.astype(str)])
        token2id = TokenIdMap(id2token)
        begin = 0
        for (feat, field, _), column in zip(remap_list, columns):
            if field not in self.field2id_token:
                self.field2id_token[field] = id2token
                self.field2token_id[field] = token2id
            feat[field] = codes[begin : begin + len(column)] + 1
            begin += len(column)
