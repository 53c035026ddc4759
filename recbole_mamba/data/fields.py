"""Names of the extra interaction fields that the lifelong dataloaders add to a batch."""

TARGET_ITEM_LIST = "target_item_list"  # seq2seq mode: (batch, L) next item at every position, 0 = padding (no loss)
NEG_ITEM_LIST = "neg_item_list"  # seq2seq mode with loss_type BPR: (batch, L) one sampled negative per position
SEQ_GROUP = "seq_group"  # sampled (uniN/popN) eval: (rows,) rows with equal value share one input sequence
