"""GRU4Rec (RecBole) that also trains on every position of the lifelong dataloader's seq2seq batches."""

from recbole.model.sequential_recommender.gru4rec import GRU4Rec

from recbole_mamba.model.all_position_training import AllPositionTraining


class GRU4RecAllPositions(AllPositionTraining, GRU4Rec):
    """RecBole's GRU4Rec, same parameters and outputs, with :class:`AllPositionTraining`'s losses."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.item_embedding.sparse = self.sparse_item_embedding

    def forward_all(self, item_seq):
        """Hidden states at every position: (batch, L, embedding_size)."""
        gru_output, _ = self.gru_layers(self.emb_dropout(self.item_embedding(item_seq)))
        return self.dense(gru_output)
