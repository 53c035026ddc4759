"""RecBole's own models still run beside the plugin, through ``recbole_mamba.quick_start.run`` (issue 8, item 7).

One tiny epoch on ML-100k (RecBole's bundled copy; the 138 users with 20-25 ratings) for one model of each family:
general (BPR), graph (LightGCN, NGCF: they build their adjacency matrix with ``dok_matrix._update``, which SciPy
1.13 removed and ``recbole_mamba.compat`` restores), sequential (GRU4Rec) and knowledge-aware (CKE, on the
``ml-100k.kg``/``ml-100k.link`` files that ship in RecBole's wheel).
"""

import math

import numpy as np
import pytest

from recbole_mamba.quick_start import Config, run

TINY = {
    "epochs": 1,
    "user_inter_num_interval": "[20,26)",
    "train_batch_size": 2048,
    "eval_batch_size": 4096,
    "embedding_size": 8,
}
# RecBole's knowledge_base.yaml loads these; the project's properties/overall.yaml replaces them with inter only.
KG_LOAD_COL = {
    "inter": ["user_id", "item_id", "timestamp"],
    "kg": ["head_id", "relation_id", "tail_id"],
    "link": ["item_id", "entity_id"],
}


def test_dok_matrix_update_stores_the_given_entries():
    from scipy.sparse import dok_matrix

    matrix = dok_matrix((3, 4), dtype=np.float32)
    matrix._update({(0, 1): 1, (2, 3): 1, (1, 0): 2})  # as RecBole's graph models call it
    expected = np.zeros((3, 4), dtype=np.float32)
    expected[0, 1] = expected[2, 3] = 1
    expected[1, 0] = 2
    np.testing.assert_array_equal(matrix.toarray(), expected)


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("BPR", {}),
        ("LightGCN", {"n_layers": 1}),
        ("NGCF", {"hidden_size_list": [8]}),
        ("GRU4Rec", {"hidden_size": 8, "MAX_ITEM_LIST_LENGTH": 20}),
        ("CKE", {"kg_embedding_size": 8}),
    ],
)
def test_recbole_model_trains_one_epoch(model, options, checkpoint_dir):
    result = run(model, "ml-100k", config_dict={**TINY, **options, "checkpoint_dir": str(checkpoint_dir)},
                 saved=False)
    assert math.isfinite(result["best_valid_score"])
    metrics = dict(result["test_result"])
    assert "ndcg@10" in metrics
    assert all(math.isfinite(value) and 0 <= value <= 1 for value in metrics.values()), metrics


def test_knowledge_aware_models_load_the_knowledge_graph_by_default():
    assert {"kg", "link"} <= set(Config("CKE", "ml-100k")["load_col"])
