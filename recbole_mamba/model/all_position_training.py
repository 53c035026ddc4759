"""All-position (seq2seq) training for sequential models that expose ``forward_all``.

A model mixing in :class:`AllPositionTraining` before RecBole's ``SequentialRecommender`` trains on RecBole's usual
batches (loss at the last position: ``POS_ITEM_ID``, plus ``NEG_ITEM_ID`` for BPR) and on the lifelong dataloader's
seq2seq batches (``fields.TARGET_ITEM_LIST`` present: loss at every position whose target is not 0, averaged over
them; BPR takes ``fields.NEG_ITEM_LIST``). The CE over all items is built in slices of at most ``ce_slice_logits``
logits, forward and backward, so memory stays bounded for long sequences and large catalogues.

The model provides ``forward_all(item_seq) -> (batch, L, H)``, ``item_embedding`` (scores are dot products with
it), ``loss_type`` ("CE" or "BPR") and, for BPR, ``loss_fct``; the mixin derives ``forward`` from ``forward_all``.
Config key: ``ce_slice_logits`` (default in ``properties/overall.yaml``).
"""

import torch

from recbole_mamba.data import fields


class _SlicedSoftmaxCrossEntropy(torch.autograd.Function):
    """Per-row ``cross_entropy(hidden @ weight.T, targets)`` with the logits built ``rows`` rows at a time.

    Nothing of size rows x items is kept for the backward: it recomputes each slice's logits from ``hidden``,
    ``weight`` and the saved log-sum-exps. Computed in float32 (at least), outside autocast.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, rows):
        dtype = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            losses = h.new_empty(h.shape[0])
            lse = h.new_empty(h.shape[0])
            for start in range(0, h.shape[0], rows):
                part = slice(start, start + rows)
                logits = h[part] @ w.T
                lse[part] = torch.logsumexp(logits, dim=-1)
                losses[part] = lse[part] - logits.gather(1, targets[part, None]).squeeze(1)
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.rows = rows
        return losses

    @staticmethod
    def backward(ctx, grad_losses):
        hidden, weight, targets, lse = ctx.saved_tensors
        rows = ctx.rows
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            dtype = lse.dtype
            h, w, grad_losses = hidden.to(dtype), weight.to(dtype), grad_losses.to(dtype)
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros_like(w)
            for start in range(0, h.shape[0], rows):
                part = slice(start, start + rows)
                # d loss / d logits = (softmax - onehot(target)) * grad, computed in place in the logits buffer
                probs = torch.sub(h[part] @ w.T, lse[part, None]).exp_()
                probs.scatter_add_(1, targets[part, None], probs.new_full((probs.shape[0], 1), -1.0))
                probs.mul_(grad_losses[part, None])
                torch.matmul(probs, w, out=grad_h[part])
                grad_w.addmm_(probs.T, h[part])
        return grad_h.to(hidden.dtype), grad_w.to(weight.dtype), None, None


def sliced_cross_entropy(hidden, weight, targets, max_logits):
    """Per-row CE of the scores ``hidden @ weight.T`` (rows x items) against ``targets``, sliced by rows.

    hidden (rows, H), weight (items, H), targets (rows,) -> (rows,) losses; at most ``max_logits`` logits exist at
    a time (at least one row).
    """
    rows = max(1, int(max_logits) // max(1, weight.shape[0]))
    return _SlicedSoftmaxCrossEntropy.apply(hidden, weight, targets, rows)


class AllPositionTraining:
    """``forward``, loss, ``predict`` and ``full_sort_predict`` for a model with ``forward_all``; see the module
    docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.ce_slice_logits = config["ce_slice_logits"]

    def forward(self, item_seq, item_seq_len):
        """The hidden state after the last real item: (batch, H) at position ``item_seq_len - 1``."""
        return self.gather_indexes(self.forward_all(item_seq), item_seq_len - 1)

    def _loss(self, hidden, pos_items, neg_items=None):
        """Mean loss of hidden (rows, H) against pos_items (rows,) (and neg_items for BPR)."""
        weight = self.item_embedding.weight
        if self.loss_type == "BPR":
            hidden = hidden.float()
            pos_score = (hidden * self.item_embedding(pos_items).float()).sum(-1)
            neg_score = (hidden * self.item_embedding(neg_items).float()).sum(-1)
            return self.loss_fct(pos_score, neg_score)
        return sliced_cross_entropy(hidden, weight, pos_items, self.ce_slice_logits).mean()

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        if fields.TARGET_ITEM_LIST in interaction:
            return self.calculate_seq2seq_loss(interaction)
        neg_items = None
        if self.loss_type == "BPR":
            if self.NEG_ITEM_ID not in interaction:
                raise ValueError(f"loss_type BPR needs sampled negatives ({self.NEG_ITEM_ID}) in the batch: set "
                                 f"train_neg_sample_args, e.g. {{distribution: uniform, sample_num: 1}}")
            neg_items = interaction[self.NEG_ITEM_ID]
        seq_output = self.forward(item_seq, interaction[self.ITEM_SEQ_LEN])
        return self._loss(seq_output, interaction[self.POS_ITEM_ID], neg_items)

    def calculate_seq2seq_loss(self, interaction):
        """Loss over every position whose ``fields.TARGET_ITEM_LIST`` entry is not 0, averaged over them."""
        targets = interaction[fields.TARGET_ITEM_LIST]
        hidden = self.forward_all(interaction[self.ITEM_SEQ])
        if targets.shape != hidden.shape[:2]:
            raise ValueError(f"{fields.TARGET_ITEM_LIST} must be shaped like the item sequence "
                             f"{tuple(hidden.shape[:2])}; got {tuple(targets.shape)}")
        valid = targets > 0
        if not bool(valid.any()):
            return hidden.sum() * 0.0  # nothing to learn from; keeps the graph for backward()
        neg_items = None
        if self.loss_type == "BPR":
            if fields.NEG_ITEM_LIST not in interaction:
                raise ValueError(f"loss_type BPR with {fields.TARGET_ITEM_LIST} needs {fields.NEG_ITEM_LIST} "
                                 f"(one negative per position) in the batch")
            neg_items = interaction[fields.NEG_ITEM_LIST][valid]
        return self._loss(hidden[valid], targets[valid], neg_items)

    def predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        test_item_emb = self.item_embedding(interaction[self.ITEM_ID])
        return (seq_output * test_item_emb).sum(dim=-1)

    def full_sort_predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return seq_output @ self.item_embedding.weight.T
