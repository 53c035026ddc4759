"""Per-user test outcomes of a RecBole run: the evaluator's ``rec.topk`` rows and user ids, captured as collected.

RecBole's trainer feeds every evaluation batch to its ``Collector`` and averages the collected rows; this context
manager records, for each evaluation, the user ids and the rows RecBole averages. The last evaluation of a run is
its test. Used by the accuracy benchmark to bootstrap over users.
"""

import contextlib

import numpy as np
from recbole.evaluator.collector import Collector

from recbole_mamba.bench.confidence import ranks_from_topk


@contextlib.contextmanager
def captured_evaluations():
    """Yield a list that receives ``(user_ids, ranks)`` (numpy arrays, RecBole's row order) per evaluation."""
    evaluations, users = [], []
    collect, get_struct = Collector.eval_batch_collect, Collector.get_data_struct

    def eval_batch_collect(self, scores, interaction, positive_u, positive_i):
        users.append(interaction[self.config["USER_ID_FIELD"]].cpu().numpy())
        return collect(self, scores, interaction, positive_u, positive_i)

    def get_data_struct(self):
        struct = get_struct(self)
        evaluations.append((np.concatenate(users), ranks_from_topk(struct.get("rec.topk").numpy())))
        users.clear()
        return struct

    Collector.eval_batch_collect, Collector.get_data_struct = eval_batch_collect, get_data_struct
    try:
        yield evaluations
    finally:
        Collector.eval_batch_collect, Collector.get_data_struct = collect, get_struct
