"""Two untrained reference rules as RecBole sequential models, so they run through the same data, split, test users
and evaluator as the trained models (:func:`recbole_mamba.quick_start.run` accepts the classes):

- :class:`HistoryLookup`: scores an item by how often it occurs in the user's history (the latest
  ``MAX_ITEM_LIST_LENGTH`` items), ties broken by recency: "the user comes back to what they watched before".
- :class:`MostPopular`: scores an item by its count among the training targets (the same for every user).

Both keep one zero parameter so RecBole's trainer can run its (no-op) epoch.
"""

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_mamba.data import fields


class _Rule(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))

    def calculate_loss(self, interaction):
        return self.fake_loss.sum() * 0

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID][:, None]).squeeze(1)


class HistoryLookup(_Rule):
    """Count of each item in the history, plus its last position / (L + 1) as a tie-breaker."""

    def full_sort_predict(self, interaction):
        seq, length = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        positions = torch.arange(1, seq.shape[1] + 1, device=seq.device).expand_as(seq)
        real = positions <= length[:, None]
        scores = torch.zeros(seq.shape[0], self.n_items, device=seq.device)
        scores.scatter_add_(1, seq, real.float())
        latest = torch.zeros_like(scores).scatter_reduce_(1, seq, (positions * real).float(), reduce="amax")
        return scores + latest / (seq.shape[1] + 1)


class MostPopular(_Rule):
    """Training-target counts, gathered during the (single) training epoch."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.register_buffer("counts", torch.zeros(self.n_items))

    def calculate_loss(self, interaction):
        targets = interaction[fields.TARGET_ITEM_LIST] if fields.TARGET_ITEM_LIST in interaction \
            else interaction[self.POS_ITEM_ID]
        self.counts += torch.bincount(targets.flatten(), minlength=self.n_items)[:self.n_items].float()
        return super().calculate_loss(interaction)

    def full_sort_predict(self, interaction):
        return self.counts.expand(len(interaction), -1).clone()
