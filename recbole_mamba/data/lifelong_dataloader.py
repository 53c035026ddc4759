"""RecBole's dataloaders and negative sampler, adapted to the lifelong dataset (:mod:`recbole_mamba.data`).

The loaders are RecBole's own (they only call ``len(dataset)`` and ``dataset[index]``); the subclasses here add:

* :class:`LifelongTrainDataLoader`: in ``seq2seq`` mode with a pairwise loss, ``fields.NEG_ITEM_LIST``, one uniform
  negative per position (different from that position's target, 0 where the target is 0);
* :class:`LifelongNegSampleEvalDataLoader`: ``fields.SEQ_GROUP`` on sampled-evaluation batches. RecBole repeats each
  user's input sequence once per candidate (1 + uniN rows); a model may encode one row per group and share it;
* :class:`LifelongRepeatableSampler`: RecBole's ``RepeatableSampler`` (the one sequential models use) with a vectorised
  rejection loop drawing the very same random numbers, and popularity counts from the flat storage.
"""

import numpy as np
import torch
from recbole.data.dataloader import NegSampleEvalDataLoader, TrainDataLoader
from recbole.sampler import RepeatableSampler, Sampler
from recbole.utils import InputType

from recbole_mamba.data import fields

PHASES = ["train", "valid", "test"]


def wants_position_negatives(config):
    """seq2seq batches carry ``NEG_ITEM_LIST`` when the loss is pairwise (``loss_type`` BPR, or a pairwise input type:
    the plugin models' BCE, pairwise RecBole models)."""
    loss_type = config["loss_type"]
    pairwise_loss = isinstance(loss_type, str) and loss_type.upper() == "BPR"
    return pairwise_loss or config["MODEL_INPUT_TYPE"] == InputType.PAIRWISE


def sample_position_negatives(targets, item_num):
    """One uniform negative in ``[1, item_num)`` per position of ``targets`` (B, L), never equal to the target; 0 where
    the target is 0. Uses numpy's global generator, like RecBole's samplers (seeded by ``init_seed``)."""
    positives = targets.numpy().reshape(-1)
    negatives = np.random.randint(1, item_num, positives.size)
    clash = np.flatnonzero(negatives == positives)
    while clash.size:
        negatives[clash] = np.random.randint(1, item_num, clash.size)
        clash = clash[negatives[clash] == positives[clash]]
    negatives[positives == 0] = 0
    return torch.from_numpy(negatives.reshape(targets.shape))


class LifelongRepeatableSampler(RepeatableSampler):
    """RecBole's ``RepeatableSampler`` (a user's negatives only exclude the positive at hand), vectorised.

    ``sample_by_user_ids`` makes the same ``sampling`` calls in the same order as RecBole's (one for all values, then
    one per round of rejected values), so with the same numpy seed it returns the same negatives.
    """

    def _get_candidates_list(self):
        # RecBole: the item of every augmented row (every non-first interaction), in target-time order.
        dataset = self.dataset
        flat, offsets = dataset._flat, dataset._user_offsets
        is_target = np.ones(len(flat), dtype=bool)
        is_target[offsets[:-1][np.diff(offsets) > 0]] = False
        positions = np.flatnonzero(is_target)
        order = np.argsort(flat[dataset.time_field].numpy()[positions], kind="stable")
        return list(flat[self.iid_field].numpy()[positions[order]])

    def sample_by_user_ids(self, user_ids, item_ids, num):
        positives = np.tile(np.asarray(item_ids, dtype=np.int64), num)
        values = np.zeros(len(positives), dtype=np.int64)
        pending = np.arange(len(positives))
        while len(pending) > 0:
            values[pending] = self.sampling(len(pending))
            pending = pending[values[pending] == positives[pending]]
        return torch.tensor(values, dtype=torch.long)


def create_samplers(config, dataset, built_datasets):
    """RecBole's ``create_samplers`` with :class:`LifelongRepeatableSampler` for repeatable recommendation."""

    def make(distribution, alpha=1.0, base=None):
        if distribution == "none":
            return None
        if base is not None:
            base.set_distribution(distribution)
            return base
        if config["repeatable"]:
            return LifelongRepeatableSampler(PHASES, dataset, distribution, alpha)
        return Sampler(PHASES, built_datasets, distribution, alpha)

    train_args = config["train_neg_sample_args"]
    base = make(train_args["distribution"], train_args["alpha"])
    samplers = [base.set_phase("train") if base else None]
    for phase in ("valid", "test"):
        sampler = make(config[f"{phase}_neg_sample_args"]["distribution"], base=base)
        samplers.append(sampler.set_phase(phase) if sampler else None)
    return tuple(samplers)


class LifelongTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader``; in ``seq2seq`` mode with a pairwise loss it adds ``fields.NEG_ITEM_LIST``."""

    def __init__(self, config, dataset, sampler, shuffle=False):
        self.position_negatives = dataset.train_mode == "seq2seq" and wants_position_negatives(config)
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    def collate_fn(self, index):
        data = super().collate_fn(index)
        if self.position_negatives:
            targets = data[fields.TARGET_ITEM_LIST]
            data[fields.NEG_ITEM_LIST] = sample_position_negatives(targets, self._dataset.item_num)
        return data


class LifelongNegSampleEvalDataLoader(NegSampleEvalDataLoader):
    """RecBole's ``NegSampleEvalDataLoader``; sampled batches also carry ``fields.SEQ_GROUP`` (RecBole's row index)."""

    def collate_fn(self, index):
        data, row_idx, positive_u, positive_i = super().collate_fn(index)
        if row_idx is not None:
            data[fields.SEQ_GROUP] = row_idx
        return data, row_idx, positive_u, positive_i
