"""Retrieval over the whole history: a causal attention readout whose keys and values are the items seen so far.

A state-space layer keeps a fixed-size summary of the history; recalling *which* items a user chose, long ago, in
the context they are in now (their favourites of the current topic) is what a fixed state does poorly and attention
does directly. :class:`HistoryRetrieval` adds one multi-head attention on top of the sequence layers: the query is
the layers' output at a position (the context), the keys and values are projections of the embeddings of the items
at or before it (their identity, no position), so each head scores every earlier occurrence of an item by how
well it fits the context and returns their weighted mean; repeats weigh in by their count. The result is added to
the output with dropout and a LayerNorm.

Cost: training O(L^2 * H) time and O(L * H) memory per sequence (``scaled_dot_product_attention`` with a causal
mask, fused kernels where torch has them); in serving each new event attends over the stored history, O(history).
"""

import torch.nn.functional as F
from torch import nn

from recbole_mamba.errors import InputError


class HistoryRetrieval(nn.Module):
    """hidden (batch, L, H) and history item embeddings -> hidden with the retrieved items added; see the module."""

    def __init__(self, hidden_size, heads, dropout_prob, layer_norm_eps):
        super().__init__()
        if hidden_size % heads:
            raise InputError("retrieval_heads", f"{heads} does not divide hidden_size {hidden_size}",
                             "choose a divisor of hidden_size, e.g. 1 or 2")
        self.heads = heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout_prob)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def _split(self, x):
        """(batch, T, H) -> (batch, heads, T, H / heads)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, hidden, item_emb, valid=None):
        """hidden (batch, Lq, H): the context at each query position; item_emb (batch, T, H): the history's items.

        Without ``valid``, Lq == T and position t reads items 0..t (causal). With ``valid`` (batch, T) booleans, every
        query reads the valid items (serving: one query after the whole stored history).
        """
        query, key, value = self._split(self.query(hidden)), self._split(self.key(item_emb)), self._split(
            self.value(item_emb))
        if valid is None:
            read = F.scaled_dot_product_attention(query, key, value, is_causal=True)
        else:
            read = F.scaled_dot_product_attention(query, key, value, attn_mask=valid[:, None, None, :])
        return self.LayerNorm(hidden + self.dropout(self.out(read.transpose(1, 2).flatten(-2))))
