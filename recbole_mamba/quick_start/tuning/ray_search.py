"""Hyper-parameter search with Ray Tune: one trial per Ray actor, a report per validation epoch (so ASHA can stop
bad trials early), the best checkpoint of each completed trial kept under the storage path.

Ray runs with its dashboard off, no usage statistics, no auth token written under ``~`` and trials in the caller's
working directory (``RAY_CHDIR_TO_TRIAL_DIR=0``), so relative paths mean what they mean to ``run.py``.
"""

import os
import tempfile
import time

from recbole_mamba import compat
from recbole_mamba.quick_start.pipeline import objective_function
from recbole_mamba.quick_start.tuning import trials

SCHEDULERS = ("asha", "fifo")
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_CHDIR_TO_TRIAL_DIR": "0"}
VALID, TEST = "valid/", "test/"  # prefixes of the final report's metrics


def trial(sample, study, metric):
    """One trial (a Ray Tune function trainable): report ``metric`` after each validation epoch, then the best
    validation and the test results with the best checkpoint."""
    import ray
    from ray import tune

    compat.apply()  # a Ray worker is a fresh process: RecBole needs the fixes there too (applied once)

    def report_epoch(epoch_idx, valid_score):
        tune.report({metric: valid_score, "epoch": epoch_idx + 1})

    with tempfile.TemporaryDirectory(prefix="recbole-mamba-trial-") as checkpoint_dir:
        config_dict = {**study.config_dict(study.values(sample)), "checkpoint_dir": checkpoint_dir,
                       "gpu_id": ",".join(map(str, ray.get_gpu_ids()))}  # the GPUs Ray gave this trial, or none
        result = objective_function(config_dict, list(study.config_files) or None, callback_fn=report_epoch)
        final = {metric: result["best_valid_score"],
                 **{VALID + key: value for key, value in result["best_valid_result"].items()},
                 **{TEST + key: value for key, value in result["test_result"].items()}}
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))


def _record(result, study, metric, bigger):
    """A :class:`~.trials.TrialRecord` from a Ray ``Result``: failed, completed, or stopped by the scheduler (its
    best validation score so far)."""
    values = study.values(result.config)
    if result.error is not None:
        return trials.failed(values, getattr(result.error, "cause", None) or result.error)
    metrics = result.metrics
    test = {key[len(TEST):]: value for key, value in metrics.items() if key.startswith(TEST)}
    if test:
        valid = {key[len(VALID):]: value for key, value in metrics.items() if key.startswith(VALID)}
        return trials.completed(values, metrics[metric], valid, test)
    scores = result.metrics_dataframe[metric]
    return trials.TrialRecord(values, f"stopped at epoch {metrics['epoch']}",
                              float(scores.max() if bigger else scores.min()))


def search(study, metric, bigger, epochs, seed, *, scheduler, num_samples, cpus_per_trial, gpus_per_trial, address,
           storage_path):
    """Run ``num_samples`` trials sampled from the params (seeded with ``seed``), ``cpus_per_trial`` and
    ``gpus_per_trial`` each, on the Ray cluster at ``address`` (None: start one here, stopped at the end).

    ``scheduler``: ``asha`` stops trials whose ``metric`` (better when ``bigger``) falls behind at epochs 1, 4,
    16, ... (Ray's reduction factor); ``fifo`` runs every trial to its end. A trial that fails is recorded and the
    search goes on. Returns the :class:`~.trials.TrialRecord` list and the experiment's folder under
    ``storage_path``.
    """
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    mode = "max" if bigger else "min"
    # The final report (test metrics) has no "epoch": max_t = epochs + 1 never stops a trial before it.
    chosen = ASHAScheduler(time_attr="epoch", max_t=epochs + 1) if scheduler == "asha" else FIFOScheduler()
    trainable = tune.with_resources(tune.with_parameters(trial, study=study, metric=metric),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={param.name: param.ray() for param in study.params},
            tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=chosen, num_samples=num_samples,
                                        search_alg=BasicVariantGenerator(random_state=seed),
                                        trial_dirname_creator=str),  # the trial's name, e.g. trial_3a1b2_00001
            run_config=tune.RunConfig(name=f"{study.model}-{study.dataset}-{time.strftime('%Y-%m-%d_%H-%M-%S')}",
                                      storage_path=os.path.abspath(storage_path)),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
    return [_record(result, study, metric, bigger) for result in grid], grid.experiment_path
