"""Run recbole-mamba's or RecBole's models by name: ``run``, ``objective_function``, ``Config``, ``get_model``."""

from recbole_mamba.quick_start.checks import check_dataset_files
from recbole_mamba.quick_start.config import Config, parse_cmd_args
from recbole_mamba.quick_start.pipeline import objective_function, run
from recbole_mamba.quick_start.registry import get_model, get_trainer

__all__ = ["Config", "check_dataset_files", "get_model", "get_trainer", "objective_function", "parse_cmd_args", "run"]
