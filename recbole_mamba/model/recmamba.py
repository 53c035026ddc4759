"""RecMamba: a Mamba sequential recommender for lifelong user histories, as a RecBole ``SequentialRecommender``.

Two block styles (``block_style``):

- ``paper``: the RecMamba paper (arXiv 2403.16371): item embedding + learned position embedding -> dropout ->
  ``num_layers`` Mamba layers, with no LayerNorm, feed-forward network or residual connection.
- ``mamba4rec``: Mamba4Rec: embedding -> dropout -> LayerNorm -> ``num_layers`` x [Mamba -> dropout ->
  LayerNorm(x + residual) -> position-wise FFN (4H, GELU, dropout) with residual + LayerNorm].

Training signal:

- RecBole's usual batches: the loss at the last position (``POS_ITEM_ID``; ``NEG_ITEM_ID`` for BPR).
- seq2seq batches from the lifelong dataloader (``fields.TARGET_ITEM_LIST`` present): the loss at every position
  whose target is not 0, averaged over those positions (BPR takes ``fields.NEG_ITEM_LIST``, one negative per
  position). The CE over all items is computed in slices of at most ``ce_slice_logits`` logits, forward and
  backward, so memory stays bounded for long sequences and large catalogues.

The model is causal: the output at a position depends only on the items up to it, so RecBole's right padding
never leaks into real positions.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss
from torch import nn

from recbole_mamba.data import fields
from recbole_mamba.model.mamba_mixer import MambaMixer, check_backend

BLOCK_STYLES = ("paper", "mamba4rec")
LOSS_TYPES = ("CE", "BPR")
LAYER_NORM_EPS = 1e-12  # Mamba4Rec's (and RecBole SASRec's) LayerNorm epsilon

# The defaults of properties/model/RecMamba.yaml (tests check that the two agree): used for keys a config lacks,
# e.g. when RecMamba runs under RecBole's own Config without the plugin's yaml.
DEFAULTS = {
    "hidden_size": 64,
    "num_layers": 1,
    "d_state": 32,
    "d_conv": 4,
    "expand": 2,
    "dropout_prob": 0.2,
    "block_style": "mamba4rec",
    "position_embedding": None,
    "loss_type": "CE",
    "mamba_backend": "auto",
    "initializer_range": 0.02,
    "ce_slice_logits": 1 << 24,
}


def _option(config, key):
    value = config[key]
    return DEFAULTS[key] if value is None else value


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


def sliced_cross_entropy(hidden, weight, targets, max_logits=1 << 24):
    """Per-row CE of the scores ``hidden @ weight.T`` (rows x items) against ``targets``, sliced by rows.

    hidden (rows, H), weight (items, H), targets (rows,) -> (rows,) losses; at most ``max_logits`` logits exist at
    a time (at least one row).
    """
    rows = max(1, int(max_logits) // max(1, weight.shape[0]))
    return _SlicedSoftmaxCrossEntropy.apply(hidden, weight, targets, rows)


class FeedForward(nn.Module):
    """Position-wise FFN with residual + LayerNorm: LN(x + dropout(W2 dropout(gelu(W1 x))))."""

    def __init__(self, hidden_size, inner_size, dropout_prob):
        super().__init__()
        self.w_1 = nn.Linear(hidden_size, inner_size)
        self.w_2 = nn.Linear(inner_size, hidden_size)
        self.dropout = nn.Dropout(dropout_prob)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=LAYER_NORM_EPS)

    def forward(self, x):
        hidden = self.dropout(self.w_2(self.dropout(F.gelu(self.w_1(x)))))
        return self.LayerNorm(hidden + x)


class Mamba4RecLayer(nn.Module):
    """Mamba4Rec's layer: Mamba -> dropout -> LayerNorm(x + residual) -> FeedForward."""

    def __init__(self, hidden_size, dropout_prob, **mixer_args):
        super().__init__()
        self.mamba = MambaMixer(hidden_size, **mixer_args)
        self.dropout = nn.Dropout(dropout_prob)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=LAYER_NORM_EPS)
        self.ffn = FeedForward(hidden_size, 4 * hidden_size, dropout_prob)

    def forward(self, x):
        return self.ffn(self.LayerNorm(self.dropout(self.mamba(x)) + x))


class RecMamba(SequentialRecommender):
    """Mamba sequential recommender; see the module docstring for the block styles and training modes.

    Like RecBole's SASRec/GRU4Rec, the class sets no ``input_type``: RecBole then derives ``MODEL_INPUT_TYPE`` from
    ``loss_type`` (CE: pointwise, no sampled negatives; BPR: pairwise, ``NEG_ITEM_ID`` in every batch). A fixed
    POINTWISE would make RecBole's sampler emit labelled rows instead of ``NEG_ITEM_ID`` under BPR.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.hidden_size = int(_option(config, "hidden_size"))
        self.num_layers = int(_option(config, "num_layers"))
        self.d_state = int(_option(config, "d_state"))
        self.d_conv = int(_option(config, "d_conv"))
        self.expand = int(_option(config, "expand"))
        self.dropout_prob = float(_option(config, "dropout_prob"))
        self.block_style = _option(config, "block_style")
        self.loss_type = _option(config, "loss_type")
        self.mamba_backend = check_backend(_option(config, "mamba_backend"))
        self.initializer_range = float(_option(config, "initializer_range"))
        self.ce_slice_logits = int(_option(config, "ce_slice_logits"))
        if self.block_style not in BLOCK_STYLES:
            raise ValueError(f"unknown block_style {self.block_style!r}: choose one of {', '.join(BLOCK_STYLES)}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss_type {self.loss_type!r} for RecMamba: choose one of "
                             f"{', '.join(LOSS_TYPES)}")
        use_position = _option(config, "position_embedding")
        self.use_position_embedding = (self.block_style == "paper") if use_position is None else bool(use_position)

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = (
            nn.Embedding(self.max_seq_length, self.hidden_size) if self.use_position_embedding else None
        )
        self.dropout = nn.Dropout(self.dropout_prob)
        mixer_args = dict(d_state=self.d_state, d_conv=self.d_conv, expand=self.expand, backend=self.mamba_backend)
        if self.block_style == "paper":
            self.LayerNorm = None
            self.layers = nn.ModuleList(MambaMixer(self.hidden_size, **mixer_args) for _ in range(self.num_layers))
        else:
            self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=LAYER_NORM_EPS)
            self.layers = nn.ModuleList(
                Mamba4RecLayer(self.hidden_size, self.dropout_prob, **mixer_args) for _ in range(self.num_layers)
            )
        self.loss_fct = BPRLoss() if self.loss_type == "BPR" else None
        # Mamba layers keep Mamba's own initialisation (dt_proj bias, A_log, D, PyTorch's default for projections)
        in_mixers = {id(m) for mixer in self.modules() if isinstance(mixer, MambaMixer) for m in mixer.modules()}
        for module in self.modules():
            if id(module) not in in_mixers:
                self._init_weights(module)

    def _init_weights(self, module):
        """Embeddings and linear layers: normal(0, initializer_range), zero bias; LayerNorm: (1, 0)."""
        if isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def forward_all(self, item_seq):
        """Hidden states at every position: item_seq (batch, L) -> (batch, L, hidden_size), causal."""
        hidden = self.item_embedding(item_seq)
        if self.position_embedding is not None:
            length = item_seq.shape[1]
            if length > self.max_seq_length:
                raise ValueError(
                    f"sequence length {length} exceeds MAX_ITEM_LIST_LENGTH={self.max_seq_length}, the size of "
                    f"the position embedding"
                )
            hidden = hidden + self.position_embedding.weight[:length]
        hidden = self.dropout(hidden)
        if self.LayerNorm is not None:
            hidden = self.LayerNorm(hidden)
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden

    def forward(self, item_seq, item_seq_len):
        """The hidden state after the last real item: (batch, hidden_size) at position ``item_seq_len - 1``."""
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
