"""A RecBole sequential dataset for lifelong histories: every user's sequence is stored once.

RecBole's :class:`~recbole.data.dataset.SequentialDataset` materialises one padded row of ``MAX_ITEM_LIST_LENGTH``
per interaction and per loaded inter field (``item_id_list``, ``timestamp_list``, ...): ``N x L`` values each, about
187 GB per field for KuaiRand-1K at L=2000. :class:`LifelongSequentialDataset` keeps instead

* the interactions themselves, sorted by user then time (RecBole's order, ties kept in file order), as one flat
  :class:`~recbole.data.interaction.Interaction` (``N`` rows) plus per-user offsets into it (``user_num + 1``);
* per split (train / valid / test) a small example table: one row per example with the user, the target item and
  two or three positions into the flat arrays (``START`` and ``END``: the input window ``[START, END)`` whose last
  target is the interaction at ``END``; in ``seq2seq`` mode also ``LOSS_START``, the first target that gets loss).

A batch is materialised from the example rows by vectorised gathers (:func:`gather_windows`): RAM stays linear in
the number of interactions, and RecBole's own dataloaders, samplers, trainers and evaluators work unchanged, since
they only call ``len(dataset)`` and ``dataset[index]``.

Training modes (config ``train_mode``):

``prefix`` (default)
    RecBole's semantics: one example per training target, its input the latest ``MAX_ITEM_LIST_LENGTH`` items before
    it. Examples, their order, and hence batches and metrics, are identical to stock RecBole's.
``seq2seq``
    One example per window of at most ``MAX_ITEM_LIST_LENGTH`` inputs; windows end every ``seq2seq_stride`` items
    (default ``MAX_ITEM_LIST_LENGTH``) counted back from the user's last training item, and every training target
    gets loss exactly once (in the oldest window that contains it, i.e. with the most context). The batch carries
    ``fields.TARGET_ITEM_LIST`` (next item at each position, 0 = no loss) besides RecBole's fields.

Validation and test examples are RecBole's in both modes (leave-one-out by time, input truncated to the latest
``MAX_ITEM_LIST_LENGTH`` items, the test input includes the validation item).

Loading is RecBole's pipeline (filtering, remapping, filling, normalisation) with three lean, result-identical
replacements: the atomic file is parsed by pandas' C parser instead of the Python one, token remapping factorizes
the column directly (no object-array copy) and builds the token->id dict only on first use, and the user/item
interaction-count filter is vectorised.
"""

import collections
import collections.abc

import numpy as np
import pandas as pd
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType, set_color

from recbole_mamba.data import fields

TRAIN_MODES = ("prefix", "seq2seq")

# Hidden columns of the split example tables (never part of a batch).
START = "__lifelong_start__"  # flat index of the first input item of the example
END = "__lifelong_end__"  # flat index of the example's (last) target; the inputs are [START, END)
LOSS_START = "__lifelong_loss_start__"  # seq2seq: flat index of the first target that gets loss
HIDDEN_COLUMNS = (START, END, LOSS_START)

# eval_args.split LS modes -> the held-out phases, in time order (RecBole's leave_one_out).
HELD_OUT_PHASES = {"valid_and_test": ("valid", "test"), "valid_only": ("valid",), "test_only": ("test",)}


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


def read_atomic_csv(filepath, separator, usecols, dtype, encoding):
    """``pd.read_csv`` of an atomic file with pyarrow's parser (C parser without pyarrow) instead of the Python one.

    Same values as RecBole's ``engine="python"`` (missing values, quoting, float rounding), several times faster and
    with arrow-backed string columns (no Python object per token).
    """
    try:
        import pyarrow  # noqa: F401
        engine, extra = "pyarrow", {}
    except ImportError:
        engine = "c"
        extra = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    return pd.read_csv(filepath, delimiter=separator, usecols=usecols, dtype=dtype, encoding=encoding,
                       engine=engine, **extra)


def factorize_tokens(tokens):
    """``pd.factorize`` of a token Series: codes by first appearance (-1 = missing) and the unique tokens.

    Arrow-backed strings are dictionary-encoded by pyarrow directly (about twice as fast as ``pd.factorize``).
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        array = tokens.array.__arrow_array__()
    except (ImportError, AttributeError, TypeError):
        codes, uniques = pd.factorize(tokens)
        return codes.astype(np.int64), np.asarray(uniques, dtype=object)
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        empty = pa.array([], pa.dictionary(pa.int32(), pa.string()))
        encoded = encoded.combine_chunks() if encoded.num_chunks else empty
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False)


def _segment_arange(counts):
    """``concatenate([arange(c) for c in counts])``, vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


class LifelongSequentialDataset(SequentialDataset):
    """:class:`~recbole.data.dataset.SequentialDataset` storing each user's history once (see the module docstring).

    Before :meth:`build` the dataset is RecBole's (``inter_feat`` a DataFrame). :meth:`build` sorts the interactions
    into flat per-user storage and returns three split datasets (copies sharing that storage) whose
    ``dataset[index]`` materialises the examples as RecBole would have them, without ever holding ``N x L`` values.
    """

    def __init__(self, config):
        self.train_mode = config["train_mode"] or "prefix"
        if self.train_mode not in TRAIN_MODES:
            raise ValueError(f"train_mode [{self.train_mode}] should be one of {list(TRAIN_MODES)}")
        max_len = config["MAX_ITEM_LIST_LENGTH"]
        stride = config["seq2seq_stride"]
        self.seq2seq_stride = int(stride) if stride is not None else max_len
        if self.seq2seq_stride < 1:
            raise ValueError(f"seq2seq_stride [{stride}] should be a positive number of items")
        self.phase = None  # None: the whole dataset; "train" / "valid" / "test": a split built by build()
        self._flat = None
        self._user_offsets = None
        self._list_fields = None
        self._scalar_fields = None
        super().__init__(config)

    # ------------------------------------------------------------------------------------------------ loading
    def _load_feat(self, filepath, source):
        """RecBole's ``_load_feat``, parsing with :func:`read_atomic_csv` instead of pandas' Python engine."""
        self.logger.debug(set_color(f"Loading feature from [{filepath}] (source: [{source}]).", "green"))
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None

        separator = self.config["field_separator"]
        encoding = self.config["encoding"]
        with open(filepath, "r", encoding=encoding) as f:
            header = f.readline()[:-1]
        columns, usecols, dtype = [], [], {}
        for field_type in header.split(separator):
            field, ftype = field_type.split(":")
            try:
                ftype = FeatureType(ftype)
            except ValueError:
                raise ValueError(f"Type {ftype} from field {field} is not supported.")
            if (load_col is not None and field not in load_col) or (unload_col is not None and field in unload_col):
                continue
            if isinstance(source, FeatureSource) or source != "link":
                self.field2source[field] = source
                self.field2type[field] = ftype
                if not ftype.value.endswith("seq"):
                    self.field2seqlen[field] = 1
                if "float" in ftype.value:
                    self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(field_type)
            dtype[field_type] = np.float64 if ftype == FeatureType.FLOAT else str
        if not columns:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None

        df = read_atomic_csv(filepath, separator, usecols, dtype, encoding)
        df.columns = columns
        seq_separator = self.config["seq_separator"]
        seq_len = self.config["seq_len"] or {}
        for field in columns:
            ftype = self.field2type[field]
            if ftype not in (FeatureType.TOKEN_SEQ, FeatureType.FLOAT_SEQ):
                continue
            texts = df[field].fillna("").tolist()
            if ftype == FeatureType.TOKEN_SEQ:
                sequences = [np.array([t for t in text.split(seq_separator) if t]) for text in texts]
            else:
                sequences = [np.array([float(t) for t in text.split(seq_separator) if t]) for text in texts]
            longest = max(map(len, sequences))
            if field in seq_len:
                sequences = [seq[: seq_len[field]] for seq in sequences]
                self.field2seqlen[field] = min(seq_len[field], longest)
            else:
                self.field2seqlen[field] = longest
            df[field] = sequences
        return df

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

    # ------------------------------------------------------------------------------------------- flat storage
    def _change_feat_format(self):
        """DataFrames -> Interactions (RecBole's conversion), then flat per-user storage instead of augmentation."""
        super(SequentialDataset, self)._change_feat_format()
        if self.config["benchmark_filename"] is not None:
            raise NotImplementedError("LifelongSequentialDataset does not read benchmark files: "
                                      "set lifelong_sequences: False to use RecBole's SequentialDataset")
        self._aug_presets()  # RecBole's field properties of item_id_list, ..., item_length
        self._check_field("uid_field", "time_field")
        flat = self.inter_feat
        # RecBole sorts by [user, time] with two stable argsorts (time first): the same order, ties in file order.
        order = np.argsort(flat[self.time_field].numpy(), kind="stable")
        order = order[np.argsort(flat[self.uid_field].numpy()[order], kind="stable")]
        order = torch.from_numpy(order)
        self._flat = Interaction({name: flat[name][order] for name in flat.columns})
        del flat, order
        counts = np.bincount(self._flat[self.uid_field].numpy(), minlength=self.user_num)
        self._user_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._list_fields = {
            field: getattr(self, f"{field}_list_field") for field in self._flat.columns if field != self.uid_field
        }
        # The scalar fields of an example are those of inter_feat (unused_col may drop some; the lists keep them).
        self.inter_feat = Interaction(dict(self._flat.interaction))

    # ----------------------------------------------------------------------------------------------- splitting
    def build(self):
        """Flat storage, then RecBole's leave-one-out split as three split datasets sharing it."""
        if self.config["eval_args"]["order"] != "TO":
            raise ValueError("The ordering args for sequential recommendation has to be 'TO'")
        split_args = self.config["eval_args"]["split"]
        if not isinstance(split_args, dict) or list(split_args) != ["LS"] or split_args["LS"] not in HELD_OUT_PHASES:
            raise NotImplementedError(
                f"LifelongSequentialDataset splits leave-one-out by time only (eval_args.split: {{'LS': ...}} with "
                f"one of {list(HELD_OUT_PHASES)}), got [{split_args}]; set lifelong_sequences: False for others"
            )
        self._change_feat_format()
        self._drop_unused_col()
        self._scalar_fields = list(self.inter_feat.columns)  # RecBole's target-row fields, after unused_col
        tables = self._split_tables(HELD_OUT_PHASES[split_args["LS"]])
        datasets = []
        for phase in ("train", "valid", "test"):
            split = self.copy(tables[phase])
            split.phase = phase
            datasets.append(split)
        self.logger.debug(
            f"lifelong splits ({self.train_mode}): "
            + ", ".join(f"{d.phase} {len(d)} examples" for d in datasets)
        )
        return datasets

    def _split_tables(self, held_out):
        """Example tables of train / valid / test, in RecBole's order (see :meth:`_user_order`)."""
        offsets = self._user_offsets
        counts = np.diff(offsets)
        rows = np.maximum(counts - 1, 0)  # RecBole's augmented rows of each user: one per non-first interaction
        users = self._user_order(np.flatnonzero(rows > 0))
        held = np.minimum(len(held_out), rows[users] - 1)  # RecBole leaves out at most rows - 1
        train_rows = rows[users] - held
        # The held-out rows of a user are its last `held` targets; they go to the last `held` held-out phases.
        ends = {}
        for k, phase in enumerate(held_out):
            behind = len(held_out) - k  # this phase takes the target `behind` positions before the end (1 = last)
            has = held >= behind
            ends[phase] = offsets[users[has] + 1] - behind
        for phase in ("valid", "test"):
            ends.setdefault(phase, np.zeros(0, dtype=np.int64))
        tables = {phase: self._prefix_table(ends[phase]) for phase in ("valid", "test")}
        if self.train_mode == "prefix":
            train_ends = np.repeat(offsets[users] + 1, train_rows) + _segment_arange(train_rows)
            tables["train"] = self._prefix_table(train_ends)
        else:
            tables["train"] = self._seq2seq_table(users, train_rows)
        return tables

    def _user_order(self, users):
        """Users in RecBole's split order.

        RecBole sorts the augmented rows (uid-major, time-sorted per user) by target time, stably, then groups them by
        user in order of first appearance: a user's first row is its second interaction, so users come ordered by
        (time of their second interaction, user id).
        """
        second_time = self._flat[self.time_field].numpy()[self._user_offsets[users] + 1]
        return users[np.argsort(second_time, kind="stable")]

    def _table(self, ends, starts, loss_starts=None):
        ends = torch.from_numpy(np.asarray(ends, dtype=np.int64))
        table = {
            self.uid_field: self._flat[self.uid_field][ends],
            self.iid_field: self._flat[self.iid_field][ends],
            START: torch.from_numpy(np.asarray(starts, dtype=np.int64)),
            END: ends,
        }
        if loss_starts is not None:
            table[LOSS_START] = torch.from_numpy(np.asarray(loss_starts, dtype=np.int64))
        return Interaction(table)

    def _prefix_table(self, ends):
        """One example per target ``ends[i]``: inputs are the latest ``MAX_ITEM_LIST_LENGTH`` items before it."""
        ends = np.asarray(ends, dtype=np.int64)
        user_start = self._user_offsets[self._flat[self.uid_field].numpy()[ends]]
        return self._table(ends, np.maximum(user_start, ends - self.max_item_list_len))

    def _seq2seq_table(self, users, train_rows):
        """Windows over each user's training targets (relative positions ``1 .. train_rows``), oldest first.

        Window ``k`` (0 = latest) has its last target at ``b_k = train_rows - k * stride`` and inputs
        ``[max(0, b_k - L), b_k)``; windows are added until one starts at the user's first item. Each target gets
        loss in the oldest window holding it: window ``k`` from ``max(a_k + 1, b_{k+1} + 1)``, the oldest from
        ``a_k + 1``.
        """
        length, stride = self.max_item_list_len, self.seq2seq_stride
        c = train_rows.astype(np.int64)
        # number of windows: until one starts at 0, and only while the last target is a real one (b_k >= 1)
        n_windows = np.minimum(-(-np.maximum(c - length, 0) // stride) + 1, (c - 1) // stride + 1)
        user = np.repeat(users, n_windows)
        k = np.repeat(n_windows, n_windows) - 1 - _segment_arange(n_windows)  # oldest window first
        last = np.repeat(c, n_windows) - k * stride
        first = np.maximum(last - length, 0)
        oldest = k == np.repeat(n_windows, n_windows) - 1
        loss_first = np.where(oldest, first + 1, np.maximum(first + 1, last - stride + 1))
        base = self._user_offsets[user]
        return self._table(base + last, base + first, base + loss_first)

    # --------------------------------------------------------------------------------------- materialisation
    def __getitem__(self, index, join=True):
        if self.phase is None:
            return super().__getitem__(index, join=join)
        data = self.materialize(self._rows(index))
        return self.join(data) if join else data

    def _rows(self, index):
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        elif isinstance(index, (int, np.integer)):
            index = torch.tensor([index])
        elif not isinstance(index, torch.Tensor):
            index = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return {name: self.inter_feat[name][index] for name in self.inter_feat.columns}

    def materialize(self, rows):
        """An :class:`Interaction` batch from example rows (dict of the split table's columns), as RecBole has it."""
        start, end = rows[START], rows[END]
        length = end - start
        data = {field: self._flat[field][end] for field in self._scalar_fields}
        data[self.item_list_length_field] = length
        index, padding = window_index(start, length, self.max_item_list_len)
        for field, list_field in self._list_fields.items():
            data[list_field] = gather_windows(self._flat[field], index, padding)
        if LOSS_START in rows:
            # the target of input column j is flat[start + j + 1]; it gets loss from LOSS_START on
            no_loss = padding | (index < (rows[LOSS_START] - 1).unsqueeze(1))
            data[fields.TARGET_ITEM_LIST] = gather_windows(self._flat[self.iid_field], index + 1, no_loss)
        return Interaction(data)

    # ---------------------------------------------------------------------------------- RecBole dataset API
    def target_positions(self):
        """Flat indices of the targets trained / evaluated by this split (each once)."""
        ends = self.inter_feat[END].numpy()
        if LOSS_START not in self.inter_feat:
            return ends
        loss_starts = self.inter_feat[LOSS_START].numpy()
        counts = ends - loss_starts + 1
        return np.repeat(loss_starts, counts) + _segment_arange(counts)

    def counter(self, field):
        """Occurrences of each token of ``field`` over this split's targets (RecBole counts its target rows)."""
        if self.phase is None or field not in self._flat or self.field2type.get(field) != FeatureType.TOKEN:
            return super().counter(field)
        values, counts = np.unique(self._flat[field].numpy()[self.target_positions()], return_counts=True)
        return collections.Counter(dict(zip(values, counts)))

    def inter_matrix(self, form="coo", value_field=None):
        """User-item matrix of this split as RecBole's SequentialDataset builds it.

        RecBole uses the split's target rows plus, for rows with a single input item, that input item. Before any
        split (after :meth:`build`) the matrix holds every interaction.
        """
        if self._flat is None:
            raise ValueError("inter_matrix needs build() first (the interactions are not yet in flat storage)")
        if not self.uid_field or not self.iid_field:
            raise ValueError("dataset does not exist uid/iid, thus can not converted to sparse matrix.")
        if self.phase is None:
            positions = np.arange(len(self._flat))
        else:
            starts, ends = self.inter_feat[START].numpy(), self.inter_feat[END].numpy()
            if LOSS_START in self.inter_feat:  # seq2seq windows: every input and target of the training part
                at_user_start = starts == self._user_offsets[self.inter_feat[self.uid_field].numpy()]
                extra = starts[at_user_start]
            else:
                extra = starts[ends - starts == 1]
            positions = np.concatenate([self.target_positions(), extra])
        positions = torch.from_numpy(positions)
        local = Interaction({
            field: self._flat[field][positions]
            for field in {self.uid_field, self.iid_field, value_field} if field is not None
        })
        return self._create_sparse_matrix(local, self.uid_field, self.iid_field, form, value_field)

    def __str__(self):
        text = super().__str__()
        if self.phase is not None:
            split = f": {self.phase} ({self.train_mode}), {len(self)} examples"
            text += "\n" + set_color("Lifelong split", "blue") + split
        return text
