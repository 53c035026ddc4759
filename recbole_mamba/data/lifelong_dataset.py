"""A RecBole sequential dataset for lifelong histories: every user's sequence is stored once.

RecBole's :class:`~recbole.data.dataset.SequentialDataset` materialises one padded row of ``MAX_ITEM_LIST_LENGTH``
per interaction and per loaded inter field (``item_id_list``, ``timestamp_list``, ...): ``N x L`` values each, about
187 GB per field for KuaiRand-1K at L=2000. :class:`LifelongSequentialDataset` keeps instead

* the interactions themselves, sorted by user then time (RecBole's order, ties kept in file order), as one flat
  :class:`~recbole.data.interaction.Interaction` (``N`` rows) plus per-user offsets into it (``user_num + 1``);
* per split (train / valid / test) a small example table: one row per example with the user, the target item and
  the window's flat positions (:mod:`recbole_mamba.data.sequence_windows`).

A batch is materialised from the example rows by vectorised gathers: RAM stays linear in the number of
interactions, and RecBole's own dataloaders, samplers, trainers and evaluators work unchanged, since they only call
``len(dataset)`` and ``dataset[index]``.

Training modes (config ``train_mode``):

``prefix``
    RecBole's semantics: one example per training target, its input the latest ``MAX_ITEM_LIST_LENGTH`` items before
    it. Examples, their order, and hence batches and metrics, are identical to stock RecBole's.
``seq2seq``
    One example per window of at most ``MAX_ITEM_LIST_LENGTH`` inputs; windows end every ``seq2seq_stride`` items
    (``~``: ``MAX_ITEM_LIST_LENGTH``) counted back from the user's last training item, and every training target
    gets loss exactly once (in the oldest window that contains it, i.e. with the most context). The batch carries
    ``fields.TARGET_ITEM_LIST`` (next item at each position, 0 = no loss) besides RecBole's fields.

Validation and test examples are RecBole's in both modes (leave-one-out by time, input truncated to the latest
``MAX_ITEM_LIST_LENGTH`` items, the test input includes the validation item).

Loading is RecBole's pipeline (filtering, remapping, filling, normalisation) with the faster, result-identical steps
of :mod:`recbole_mamba.data.fast_loading`.
"""

import collections

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureType, set_color

from recbole_mamba.data import fields
from recbole_mamba.data.fast_loading import FastLoading
from recbole_mamba.data.sequence_windows import (
    END,
    HELD_OUT_PHASES,
    LOSS_START,
    START,
    TRAIN_MODES,
    gather_windows,
    group_by_user,
    split_windows,
    target_positions,
    window_index,
)
from recbole_mamba.errors import InputError, check_choice


class LifelongSequentialDataset(FastLoading, SequentialDataset):
    """:class:`~recbole.data.dataset.SequentialDataset` storing each user's history once (see the module docstring).

    Before :meth:`build` the dataset is RecBole's (``inter_feat`` a DataFrame). :meth:`build` sorts the interactions
    into flat per-user storage and returns three split datasets (copies sharing that storage) whose
    ``dataset[index]`` materialises the examples as RecBole would have them, without ever holding ``N x L`` values.
    """

    def __init__(self, config):
        self.train_mode = check_choice("train_mode", config["train_mode"], TRAIN_MODES)
        stride = config["seq2seq_stride"]  # a positive integer (quick_start.option_checks) or ~
        self.seq2seq_stride = config["MAX_ITEM_LIST_LENGTH"] if stride is None else stride
        self.phase = None  # None: the whole dataset; "train" / "valid" / "test": a split built by build()
        self._flat = None
        self._user_offsets = None
        self._list_fields = None
        self._scalar_fields = None
        super().__init__(config)

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
        order, self._user_offsets = group_by_user(
            flat[self.uid_field].numpy(), flat[self.time_field].numpy(), self.user_num
        )
        order = torch.from_numpy(order)
        self._flat = Interaction({name: flat[name][order] for name in flat.columns})
        del flat, order
        self._list_fields = {
            field: getattr(self, f"{field}_list_field") for field in self._flat.columns if field != self.uid_field
        }
        # The scalar fields of an example are those of inter_feat (unused_col may drop some; the lists keep them).
        self.inter_feat = Interaction(dict(self._flat.interaction))

    # ----------------------------------------------------------------------------------------------- splitting
    def build(self):
        """Flat storage, then RecBole's leave-one-out split as three split datasets sharing it."""
        split_args = self.config["eval_args"]["split"]
        if self.config["eval_args"]["order"] != "TO" or list(split_args) != ["LS"]:
            raise InputError("eval_args", f"order {self.config['eval_args']['order']}, split {split_args}: the "
                             "lifelong dataset splits leave-one-out in time order only",
                             "use order: TO and split: {LS: valid_and_test}, or set lifelong_sequences: False")
        self._change_feat_format()
        self._drop_unused_col()
        self._scalar_fields = list(self.inter_feat.columns)  # RecBole's target-row fields, after unused_col
        windows = split_windows(self._user_offsets, self._flat[self.time_field].numpy(),
                                HELD_OUT_PHASES[split_args["LS"]], self.train_mode, self.max_item_list_len,
                                self.seq2seq_stride)
        datasets = []
        for phase in ("train", "valid", "test"):
            split = self.copy(self._table(*windows[phase]))
            split.phase = phase
            datasets.append(split)
        self.logger.debug(
            f"lifelong splits ({self.train_mode}): "
            + ", ".join(f"{d.phase} {len(d)} examples" for d in datasets)
        )
        return datasets

    def _table(self, starts, ends, loss_starts):
        """The example table of windows (see :func:`~recbole_mamba.data.sequence_windows.split_windows`)."""
        ends = torch.from_numpy(ends)
        table = {
            self.uid_field: self._flat[self.uid_field][ends],
            self.iid_field: self._flat[self.iid_field][ends],
            START: torch.from_numpy(starts),
            END: ends,
        }
        if loss_starts is not None:
            table[LOSS_START] = torch.from_numpy(loss_starts)
        return Interaction(table)

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
    def _target_positions(self):
        """Flat indices of the targets trained / evaluated by this split (each once)."""
        loss_starts = self.inter_feat[LOSS_START].numpy() if LOSS_START in self.inter_feat else None
        return target_positions(self.inter_feat[END].numpy(), loss_starts)

    def counter(self, field):
        """Occurrences of each token of ``field`` over this split's targets (RecBole counts its target rows)."""
        if self.phase is None or field not in self._flat or self.field2type.get(field) != FeatureType.TOKEN:
            return super().counter(field)
        values, counts = np.unique(self._flat[field].numpy()[self._target_positions()], return_counts=True)
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
            positions = np.concatenate([self._target_positions(), extra])
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
