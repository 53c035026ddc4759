"""SASRec with ``torch.nn.functional.scaled_dot_product_attention``: the attention baseline a user would pick today.

Same parameters, initialisation and outputs as RecBole's SASRec (its state dict loads as is), but attention runs
through PyTorch's fused kernels (flash / memory-efficient on GPU) with a causal mask instead of materialising the
(batch, heads, L, L) score and mask tensors. With RecBole's right padding, the causal mask alone already keeps every
real position from attending to padding (padding only ever follows the real items).
"""

import torch
import torch.nn.functional as F
from recbole.model.layers import MultiHeadAttention
from recbole.model.sequential_recommender.sasrec import SASRec

from recbole_mamba.model.all_position_training import AllPositionTraining


class CausalSDPAttention(MultiHeadAttention):
    """RecBole's MultiHeadAttention computed with causal ``scaled_dot_product_attention``; the mask is unused."""

    def forward(self, input_tensor, attention_mask=None):
        batch, length, _ = input_tensor.shape

        def heads(projection):
            return projection(input_tensor).view(batch, length, self.num_attention_heads, -1).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads(self.query), heads(self.key), heads(self.value),
            dropout_p=self.attn_dropout.p if self.training else 0.0, is_causal=True,
        )
        hidden = self.out_dropout(self.dense(context.transpose(1, 2).reshape(batch, length, self.all_head_size)))
        return self.LayerNorm(hidden + input_tensor)


class SASRecSDPA(AllPositionTraining, SASRec):
    """SASRec (RecBole) with fused causal attention; identical results up to float rounding on RecBole's batches.

    Also trains on every position of the lifelong dataloader's seq2seq batches (:class:`AllPositionTraining`).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.item_embedding.sparse = self.sparse_item_embedding
        for layer in self.trm_encoder.layer:
            layer.multi_head_attention.__class__ = CausalSDPAttention  # same parameters, fused forward

    def forward_all(self, item_seq):
        """Hidden states at every position: (batch, L, hidden)."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0)
        hidden = self.dropout(self.LayerNorm(self.item_embedding(item_seq) + self.position_embedding(positions)))
        return self.trm_encoder(hidden, None, output_all_encoded_layers=False)[-1]
