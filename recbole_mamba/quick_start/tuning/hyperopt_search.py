"""Hyper-parameter search with hyperopt, in this process: RecBole's exhaustive search, random search or TPE."""

import traceback

import numpy as np

from recbole_mamba.errors import InputError
from recbole_mamba.quick_start.pipeline import objective_function
from recbole_mamba.quick_start.tuning import trials

ALGOS = ("exhaustive", "random", "bayes")


def _suggest(algo):
    from hyperopt import rand, tpe
    from recbole.trainer.hyper_tuning import exhaustive_search  # made to work with hyperopt >= 0.2.7 by compat

    return {"exhaustive": exhaustive_search, "random": rand.suggest, "bayes": tpe.suggest}[algo]


def run_trial(study, values):
    """Train and evaluate one trial with ``values``; a trial that raises is recorded as failed."""
    try:
        result = objective_function(study.config_dict(values), list(study.config_files) or None)
    except Exception as error:  # noqa: BLE001  (recorded as a failed trial; the search goes on)
        if not isinstance(error, InputError):  # a bug, or a model that rejects this combination: show it all
            traceback.print_exc()
        return trials.failed(values, error)
    return trials.completed(values, result["best_valid_score"], result["best_valid_result"], result["test_result"])


def search(study, algo, max_evals, seed, bigger, on_trial):
    """Run up to ``max_evals`` trials chosen by ``algo`` (one of :data:`ALGOS`), starting hyperopt's generator from
    ``seed``; ``on_trial(records)`` is called after each. An exhaustive search ends early when every combination of
    the (discrete) parameters has run. Returns the :class:`~.trials.TrialRecord` list."""
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin

    records = []

    def objective(sample):
        record = run_trial(study, study.values(sample))
        records.append(record)
        on_trial(records)
        if record.status != trials.DONE:
            return {"status": STATUS_FAIL}
        return {"status": STATUS_OK, "loss": -record.valid_score if bigger else record.valid_score}

    space = {param.name: param.hyperopt() for param in study.params}
    fmin(objective, space, algo=_suggest(algo), max_evals=max_evals, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False, return_argmin=False)
    return records
