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

import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss
from torch import nn

from recbole_mamba.errors import check_choice
from recbole_mamba.model.all_position_training import AllPositionTraining
from recbole_mamba.model.mamba_mixer import MambaMixer
from recbole_mamba.ops.backends import check_backend

BLOCK_STYLES = ("paper", "mamba4rec")
LOSS_TYPES = ("CE", "BPR")
LAYER_NORM_EPS = 1e-12  # Mamba4Rec's (and RecBole SASRec's) LayerNorm epsilon


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


class RecMamba(AllPositionTraining, SequentialRecommender):
    """Mamba sequential recommender; see the module docstring for the block styles and training modes.

    Like RecBole's SASRec/GRU4Rec, the class sets no ``input_type``: RecBole then derives ``MODEL_INPUT_TYPE`` from
    ``loss_type`` (CE: pointwise, no sampled negatives; BPR: pairwise, ``NEG_ITEM_ID`` in every batch). A fixed
    POINTWISE would make RecBole's sampler emit labelled rows instead of ``NEG_ITEM_ID`` under BPR.
    """

    OPTION_CHOICES = {"block_style": BLOCK_STYLES, "loss_type": LOSS_TYPES}  # also checked before a run starts

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.hidden_size = config["hidden_size"]
        self.num_layers = config["num_layers"]
        self.d_state = config["d_state"]
        self.d_conv = config["d_conv"]
        self.expand = config["expand"]
        self.dropout_prob = config["dropout_prob"]
        self.block_style = check_choice("block_style", config["block_style"], BLOCK_STYLES)
        self.loss_type = check_choice("loss_type", config["loss_type"], LOSS_TYPES)
        self.mamba_backend = check_backend(config["mamba_backend"])
        self.initializer_range = config["initializer_range"]
        use_position = config["position_embedding"]
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
