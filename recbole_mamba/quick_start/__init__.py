"""Run recbole-mamba's or RecBole's models by name: ``run``, ``objective_function``, ``Config``, ``get_model``;
``load_data_and_model`` brings a trained run back from its checkpoint.

An entry point: importing it applies the RecBole compatibility fixes (:mod:`recbole_mamba.compat`).
"""

from recbole_mamba import compat

compat.apply()

from recbole_mamba.quick_start.checks import check_dataset_files  # noqa: E402  (after the fixes)
from recbole_mamba.quick_start.config import Config, parse_cmd_args  # noqa: E402
from recbole_mamba.quick_start.loading import load_data_and_model  # noqa: E402
from recbole_mamba.quick_start.pipeline import objective_function, run  # noqa: E402
from recbole_mamba.quick_start.registry import get_model  # noqa: E402

__all__ = ["Config", "check_dataset_files", "get_model", "load_data_and_model", "objective_function",
           "parse_cmd_args", "run"]
