"""Train and evaluate one model on one dataset, RecBole-style, for recbole-mamba's and RecBole's models alike."""

import logging
import sys
from pathlib import Path

from recbole.utils import get_environment, init_logger, init_seed, set_color

from recbole_mamba.data.synthetic_marker import synthetic_description
from recbole_mamba.quick_start.checks import check_dataset_size, check_input
from recbole_mamba.quick_start.config import Config
from recbole_mamba.errors import InputError
from recbole_mamba.quick_start.trainer import TrainingDiverged, trainer_class

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


def _train_and_evaluate(config, saved, verbose):
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
    dataset = data.create_dataset(config)
    logger.info(dataset)
    check_dataset_size(config, dataset)
    train_data, valid_data, test_data = data.data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)

    trainer = trainer_class(config)(config, model)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"]
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


def run(model="RecMamba", dataset="kuairand", config_file_list=None, config_dict=None, saved=True, cmd_args=None,
        strict=False):
    """Train ``model`` on ``dataset``, evaluate the best checkpoint on the test split, return RecBole's result dict.

    Args:
        model: a recbole-mamba model name (e.g. ``RecMamba``), any RecBole model name (e.g. ``SASRec``), or a class.
        dataset: dataset name; its files are ``<data_path>/<dataset>/<dataset>.inter`` (``ml-100k`` is bundled).
        config_file_list: yaml files, later ones overriding earlier ones.
        config_dict: parameters overriding the files.
        saved: save the best checkpoint and evaluate it (else evaluate the last model).
        cmd_args: ``--key=value`` strings overriding everything (``run.py`` passes its command line).
        strict: unknown options are errors (else warnings).

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
    init_seed(config["seed"], config["reproducibility"])
    logs_before = _paths_under(LOG_ROOT)
    _init_logging(config)
    logger = logging.getLogger()
    logger.info(sys.argv)
    logger.info(config)
    for warning in config.option_warnings:
        logger.warning(warning)
    try:
        return _train_and_evaluate(config, saved=saved, verbose=True)
    except InputError as error:
        if not isinstance(error, TrainingDiverged):  # found while loading: leave no trace, as the early checks
            _discard_new_logs(logs_before)
        raise


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """RecBole's HyperTuning objective: ``model`` and ``dataset`` come from the config; logs only errors.

    Returns:
        dict with ``model`` and the keys ``run`` returns.
    """
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    check_input(config)
    init_seed(config["seed"], config["reproducibility"])
    _remove_installed_handlers()
    logging.getLogger().setLevel(logging.ERROR)
    return {"model": config["model"], **_train_and_evaluate(config, saved=saved, verbose=False)}
