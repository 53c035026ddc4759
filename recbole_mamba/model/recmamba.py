"""RecMamba: a Mamba sequential recommender for lifelong user histories, as a RecBole ``SequentialRecommender``.

Two block styles (``block_style``):

- ``paper``: the RecMamba paper (arXiv 2403.16371): item embedding x sqrt(hidden_size) + learned position
  embedding -> dropout -> ``num_layers`` Mamba layers, with no LayerNorm, feed-forward network or residual
  connection. The scaling is the paper code's (from SASRec's): without a normalisation the Mamba layer sees the
  embeddings' scale, and at ``initializer_range`` 0.02 unscaled inputs left it nearly untrained (validation NDCG@10
  flat on ML-100k, see the README).
- ``mamba4rec``: Mamba4Rec: embedding -> dropout -> LayerNorm -> ``num_layers`` x [Mamba -> dropout ->
  LayerNorm(x + residual) -> position-wise FFN (4H, GELU, dropout) with residual + LayerNorm].

``history_retrieval`` (either style) adds, after the last layer, an attention readout over the embeddings of the
items seen so far (:mod:`recbole_mamba.model.history_retrieval`): a hybrid that recalls old items directly.

Training signal:

- RecBole's usual batches: the loss at the last position (``POS_ITEM_ID``; ``NEG_ITEM_ID`` for BPR and BCE).
- seq2seq batches from the lifelong dataloader (``fields.TARGET_ITEM_LIST`` present): the loss at every position
  whose target is not 0, averaged over those positions (BPR and BCE take ``fields.NEG_ITEM_LIST``, one negative per
  position).
- ``loss_type``: CE (all items, in slices of ``ce_slice_logits`` logits), sampled_softmax, BPR or BCE; a sparse
  item embedding (``sparse_item_embedding``) for large catalogues: see
  :mod:`recbole_mamba.model.all_position_training`.

The model is causal: the output at a position depends only on the items up to it, so RecBole's right padding
never leaks into real positions.

Serving (recurrent inference, in eval mode): :meth:`RecMamba.prefill` turns histories into user representations and
per-user states (a dict of tensors, batch first: ``"length"`` and each layer's conv window and SSM state, see
:meth:`~recbole_mamba.model.mamba_mixer.MambaMixer.prefill`; with ``history_retrieval`` or ``history_copy`` also
``"history"``, the item ids, to score with
:meth:`~recbole_mamba.model.all_position_training.AllPositionTraining.score_items`); :meth:`RecMamba.step` folds new
interactions into a state in O(1) time per event, whatever the history's length (with ``history_retrieval``:
O(history), its readout reads the stored items).
``{key: value[i:i + 1] for key, value in state.items()}`` is user ``i``'s state; ``torch.save`` and
``torch.load(weights_only=True)`` keep it.
"""

import torch

import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from recbole_mamba.errors import check_choice
from recbole_mamba.model.all_position_training import AllPositionTraining
from recbole_mamba.model.history_retrieval import HistoryRetrieval
from recbole_mamba.model.mamba_mixer import MambaMixer
from recbole_mamba.ops.backends import check_backend

BLOCK_STYLES = ("paper", "mamba4rec")
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

    def _after_mamba(self, mamba_out, x):
        return self.ffn(self.LayerNorm(self.dropout(mamba_out) + x))

    def forward(self, x):
        return self._after_mamba(self.mamba(x), x)

    def prefill(self, x, lengths):
        """:meth:`MambaMixer.prefill` through the whole layer: (output, the Mamba state)."""
        mamba_out, state = self.mamba.prefill(x, lengths)
        return self._after_mamba(mamba_out, x), state

    def step(self, x, state):
        """:meth:`MambaMixer.step` through the whole layer: x (batch, hidden) -> (output, the next state)."""
        mamba_out, state = self.mamba.step(x, state)
        return self._after_mamba(mamba_out, x), state


class RecMamba(AllPositionTraining, SequentialRecommender):
    """Mamba sequential recommender; see the module docstring for the block styles and training modes.

    Like RecBole's SASRec/GRU4Rec, the class sets no ``input_type``: RecBole then derives ``MODEL_INPUT_TYPE`` from
    ``loss_type`` (CE, sampled_softmax: pointwise, no sampled negatives; BPR, BCE: pairwise, ``NEG_ITEM_ID`` in
    every batch). A fixed POINTWISE would make RecBole's sampler emit labelled rows instead of ``NEG_ITEM_ID``.
    """

    OPTION_CHOICES = {**AllPositionTraining.OPTION_CHOICES, "block_style": BLOCK_STYLES}  # checked before a run too

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.hidden_size = config["hidden_size"]
        self.num_layers = config["num_layers"]
        self.d_state = config["d_state"]
        self.d_conv = config["d_conv"]
        self.expand = config["expand"]
        self.dropout_prob = config["dropout_prob"]
        self.block_style = check_choice("block_style", config["block_style"], BLOCK_STYLES)
        self.mamba_backend = check_backend(config["mamba_backend"])
        self.initializer_range = config["initializer_range"]
        use_position = config["position_embedding"]
        self.use_position_embedding = (self.block_style == "paper") if use_position is None else bool(use_position)

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0,
                                           sparse=self.sparse_item_embedding)
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
        self.history_retrieval = (HistoryRetrieval(self.hidden_size, config["retrieval_heads"], self.dropout_prob,
                                                   LAYER_NORM_EPS) if config["history_retrieval"] else None)
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

    def _check_positions(self, length):
        """Sequences of ``length`` items must fit the position embedding, where there is one."""
        if self.position_embedding is not None and length > self.max_seq_length:
            raise ValueError(
                f"sequence length {length} exceeds MAX_ITEM_LIST_LENGTH={self.max_seq_length}, the size of "
                f"the position embedding"
            )

    def _embed(self, items, positions):
        """The layers' input for ``items`` at ``positions`` (broadcast against items): embedding(s) (paper: the item
        embedding x sqrt(hidden_size)), dropout, LN."""
        hidden = self.item_embedding(items)
        if self.block_style == "paper":
            hidden = hidden * self.hidden_size**0.5
        if self.position_embedding is not None:
            hidden = hidden + self.position_embedding(positions)
        hidden = self.dropout(hidden)
        return hidden if self.LayerNorm is None else self.LayerNorm(hidden)

    def _keeps_history(self):
        """Whether serving states keep the history's item ids (``history_retrieval`` reads them, ``history_copy``
        scores them: :meth:`score_items` with ``state["history"]`` and ``state["length"]``)."""
        return self.history_retrieval is not None or self.history_copy is not None

    def _retrieve(self, hidden, history, valid=None):
        """``hidden`` after the history readout (if ``history_retrieval``) over the items ``history``."""
        if self.history_retrieval is None:
            return hidden
        return self.history_retrieval(hidden, self.dropout(self.item_embedding(history)), valid)

    def forward_all(self, item_seq):
        """Hidden states at every position: item_seq (batch, L) -> (batch, L, hidden_size), causal."""
        self._check_positions(item_seq.shape[1])
        hidden = self._embed(item_seq, torch.arange(item_seq.shape[1], device=item_seq.device))
        for layer in self.layers:
            hidden = layer(hidden)
        return self._retrieve(hidden, item_seq)

    @torch.no_grad()
    def prefill(self, item_seq, item_seq_len):
        """User representations and states after right-padded histories (inference; call in eval mode).

        item_seq (batch, L), item_seq_len (batch,), 1 <= item_seq_len <= L. Returns (representation (batch,
        hidden_size), equal to :meth:`forward`'s, state): the state holds ``"length"`` (item_seq_len) and, for layer
        ``i``, ``"layer<i>.conv"`` and ``"layer<i>.ssm"``.
        """
        if not bool(((item_seq_len >= 1) & (item_seq_len <= item_seq.shape[1])).all()):
            raise ValueError(f"item_seq_len must be in [1, {item_seq.shape[1]}] (the history length)")
        self._check_positions(item_seq.shape[1])
        hidden = self._embed(item_seq, torch.arange(item_seq.shape[1], device=item_seq.device))
        state = {"length": item_seq_len.clone()}
        for index, layer in enumerate(self.layers):
            hidden, layer_state = layer.prefill(hidden, item_seq_len)
            state.update({f"layer{index}.{name}": value for name, value in layer_state.items()})
        if self._keeps_history():
            state["history"] = item_seq.clone()
        return self.gather_indexes(self._retrieve(hidden, item_seq), item_seq_len - 1), state

    @torch.no_grad()
    def step(self, state, item_ids):
        """Fold new interactions into users' states: O(1) per event, whatever the history's length.

        item_ids (batch,) (one new item per user) or (batch, k) (k items each, oldest first). Returns
        (representation after the last of them, the next state); ``state`` is not modified. Equals :meth:`prefill`
        (and :meth:`forward`) over the histories extended by the new items; with a position embedding (paper
        style) the positions continue from ``state["length"]``, up to ``MAX_ITEM_LIST_LENGTH``.
        """
        columns = (item_ids.unsqueeze(1) if item_ids.dim() == 1 else item_ids).unbind(1)
        if not columns:
            raise ValueError("step needs at least one new item per user")
        for items in columns:
            positions = state["length"]
            if self.position_embedding is not None:
                self._check_positions(int(positions.max()) + 1)
            hidden = self._embed(items, positions)
            next_state = {"length": positions + 1}
            for index, layer in enumerate(self.layers):
                names = ("conv", "ssm")
                hidden, layer_state = layer.step(hidden, {name: state[f"layer{index}.{name}"] for name in names})
                next_state.update({f"layer{index}.{name}": layer_state[name] for name in names})
            if self._keeps_history():
                next_state["history"] = history = _appended(state["history"], positions, items)
            if self.history_retrieval is not None:
                valid = torch.arange(history.shape[1], device=history.device) <= positions[:, None]
                hidden = self._retrieve(hidden[:, None], history, valid)[:, 0]
            state = next_state
        return hidden, state


def _appended(history, lengths, items):
    """A copy of the right-padded ``history`` (batch, T) with ``items`` (batch,) written at ``lengths``."""
    width = max(history.shape[1], int(lengths.max()) + 1)
    extended = F.pad(history, (0, width - history.shape[1]))
    return extended.scatter(1, lengths[:, None], items[:, None])
