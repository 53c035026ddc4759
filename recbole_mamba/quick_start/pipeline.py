"""Train and evaluate one model on one dataset, RecBole-style, for recbole-mamba's and RecBole's models alike.

With RecBole's multi-process options (``nproc``, ``world_size``, ``ip``, ``port``, ``offset``), :func:`run` starts
``nproc`` training processes on this machine (``torch.multiprocessing``); each joins the process group as rank
``offset + local_rank`` (:mod:`recbole_mamba.compat`: ``dist_backend``, gloo on CPUs, nccl on GPUs).
"""

import inspect
import logging
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from recbole.utils import get_environment, init_logger, init_seed, set_color

from recbole_mamba.data.synthetic_marker import synthetic_description
from recbole_mamba.quick_start.checks import check_dataset_size, check_input
from recbole_mamba.quick_start.config import Config
from recbole_mamba.errors import InputError
from recbole_mamba.quick_start.trainer import TrainingDiverged, load_checkpoint, trainer_class

# Root-logger handlers installed by our last init_logger call: removed before the next run, else RecBole's
# logging.basicConfig would keep writing every later run of this process into the first run's log file.
_installed_handlers = []


def _remove_installed_handlers():
    root = logging.getLogger()
    for handler in _installed_handlers:
        root.removeHandler(handler)
        handler.close()
    _installed_handlers.clear()


LOG_ROOT = Path("log")  # where RecBole's init_logger writes, relative to the current folder


def _paths_under(folder):
    return set(folder.rglob("*")) if folder.is_dir() else set()


def _discard_new_logs(before):
    """Remove what this run added under ``log/`` (files, then emptied folders) after an input error found late."""
    _remove_installed_handlers()
    added = _paths_under(LOG_ROOT) - before
    for path in sorted(added, key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            path.unlink()
        elif not any(path.iterdir()):
            path.rmdir()
    if LOG_ROOT.is_dir() and not before and not any(LOG_ROOT.iterdir()):
        LOG_ROOT.rmdir()


def _init_logging(config):
    _remove_installed_handlers()
    root = logging.getLogger()
    before = set(root.handlers)
    init_logger(config)
    _installed_handlers[:] = [handler for handler in root.handlers if handler not in before]


def _train_and_evaluate(config, saved, verbose, callback_fn=None, resume=None):
    from recbole_mamba import data  # the data package may replace RecBole's dataset; resolve it at call time

    logger = logging.getLogger()
    model_class = config.model_class
    logger.info(
        f"model class: {model_class.__module__}.{model_class.__name__}; "
        f"dataset: {config['dataset']} (from {config['data_path']})"
    )
    synthetic = synthetic_description(Path(config["data_path"]))
    if synthetic:
        logger.warning(set_color(f"dataset {config['dataset']} is SYNTHETIC, not real data: {synthetic}", "red"))
    if not config["single_spec"]:
        logger.info(f"distributed training: backend {dist.get_backend()}, world_size = {dist.get_world_size()}, "
                    f"rank {dist.get_rank()}, device {config['device']}")
    dataset = data.create_dataset(config)
    logger.info(dataset)
    check_dataset_size(config, dataset)
    train_data, valid_data, test_data = data.data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)

    trainer = trainer_class(config)(config, model)
    if resume:
        trainer.resume_checkpoint(resume)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"],
        callback_fn=callback_fn,
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "synthetic_data": synthetic,
    }


# RecBole's multi-process options -> the parameters of recbole.quick_start.run whose defaults they take.
PROCESS_OPTIONS = {"nproc": "nproc", "world_size": "world_size", "ip": "ip", "port": "port", "offset": "group_offset"}


def process_options(config):
    """``config``'s multi-process options, defaulting to ``recbole.quick_start.run``'s; ``world_size`` -1 = nproc."""
    from recbole.quick_start import run as recbole_run

    defaults = inspect.signature(recbole_run).parameters
    options = {key: defaults[name].default if config[key] is None else config[key]
               for key, name in PROCESS_OPTIONS.items()}
    if options["world_size"] == -1:
        options["world_size"] = options["nproc"]
    if options["offset"] + options["nproc"] > options["world_size"]:
        raise InputError("world_size", f"{options['world_size']} processes in all, but this machine starts ranks "
                         f"{options['offset']} to {options['offset'] + options['nproc'] - 1}",
                         "give world_size = the processes on all machines, offset = this machine's first rank")
    return options


def _run_process(local_rank, options, run_kwargs, queue):
    """One of several training processes: :func:`run` as ``local_rank``; its result or input error goes to ``queue``."""
    cmd_args = [arg for arg in run_kwargs["cmd_args"] or [] if arg[2:].partition("=")[0] not in options]
    config_dict = {**(run_kwargs["config_dict"] or {}), **options, "local_rank": local_rank}
    if "OMP_NUM_THREADS" not in os.environ:  # as torchrun: the processes share the cores rather than oversubscribe
        torch.set_num_threads(max(1, torch.get_num_threads() // options["nproc"]))
    try:
        result = run(**{**run_kwargs, "cmd_args": cmd_args, "config_dict": config_dict})
    except InputError as error:
        queue.put((type(error), error.where, error.problem, error.fix))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if local_rank == 0:
        queue.put(result)


def _run_processes(options, run_kwargs):
    """Run ``options["nproc"]`` processes of a multi-process training; the result of local rank 0."""
    queue = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_run_process, args=(options, run_kwargs, queue), nprocs=options["nproc"], join=True)
    except mp.ProcessRaisedException:
        if queue.empty():
            raise
    outcome = queue.get()
    if isinstance(outcome, tuple):  # a process stopped on bad input: raise it here, as one process would
        error_class, *args = outcome
        raise error_class(*args)
    return outcome


def run(model="RecMamba", dataset="kuairand", config_file_list=None, config_dict=None, saved=True, cmd_args=None,
        strict=False, resume=None):
    """Train ``model`` on ``dataset``, evaluate the best checkpoint on the test split, return RecBole's result dict.

    Args:
        model: a recbole-mamba model name (e.g. ``RecMamba``), any RecBole model name (e.g. ``SASRec``), or a class.
        dataset: dataset name; its files are ``<data_path>/<dataset>/<dataset>.inter`` (``ml-100k`` is bundled).
        config_file_list: yaml files, later ones overriding earlier ones.
        config_dict: parameters overriding the files.
        saved: save the best checkpoint and evaluate it (else evaluate the last model).
        cmd_args: ``--key=value`` strings overriding everything (``run.py`` passes its command line).
        strict: unknown options are errors (else warnings).
        resume: a checkpoint of an interrupted run of the same model and dataset: training continues from it (and
            writes its checkpoints there), drawing the same random numbers as the uninterrupted run.

    With ``nproc`` > 1 or ``world_size`` > 1 in the configuration, training runs in several processes (see the
    module docstring) and the result is that of this machine's first process.

    Returns:
        dict with ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result`` and
        ``synthetic_data`` (the generator's description when the dataset is synthetic, else None).

    Raises:
        recbole_mamba.errors.InputError: bad input (model, options, config or dataset files), raised before any
        log, checkpoint or dataset file is written; its subclass ``TrainingDiverged`` when the loss becomes NaN.
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    cmd_args=cmd_args, strict=strict)
    check_input(config)
    if resume:
        load_checkpoint(resume, config)  # missing, unsafe, or of another model or dataset: before anything is written
    if config["single_spec"]:
        options = process_options(config)
        if options["world_size"] > 1:
            return _run_processes(options, dict(model=model, dataset=dataset, config_file_list=config_file_list,
                                                config_dict=config_dict, saved=saved, cmd_args=cmd_args,
                                                strict=strict, resume=resume))
    init_seed(config["seed"], config["reproducibility"])
    logs_before = _paths_under(LOG_ROOT)
    _init_logging(config)
    logger = logging.getLogger()
    logger.info(sys.argv)
    logger.info(config)
    for warning in config.option_warnings:
        logger.warning(warning)
    try:
        return _train_and_evaluate(config, saved=saved, verbose=True, resume=resume)
    except InputError as error:
        if not isinstance(error, TrainingDiverged):  # found while loading: leave no trace, as the early checks
            _discard_new_logs(logs_before)
        raise


def objective_function(config_dict=None, config_file_list=None, saved=True, callback_fn=None):
    """RecBole's HyperTuning objective: ``model`` and ``dataset`` come from the config; logs only errors.

    ``callback_fn(epoch_idx, valid_score)`` is called after each validation (RecBole's ``Trainer.fit``).

    Returns:
        dict with ``model`` and the keys ``run`` returns.
    """
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    check_input(config)
    init_seed(config["seed"], config["reproducibility"])
    _remove_installed_handlers()
    logging.getLogger().setLevel(logging.ERROR)
    return {"model": config["model"], **_train_and_evaluate(config, saved=saved, verbose=False,
                                                            callback_fn=callback_fn)}
