"""RecBole ``Config`` that also reads recbole-mamba's ``properties/`` folder and resolves plugin models by name.

Priority, lowest first (RecBole's order, with the project's yaml files added to the internal layer):

1. RecBole's own defaults (its ``overall.yaml``, model yaml, dataset yaml, model-type quick-start yaml);
2. ``properties/overall.yaml``, then the model's yaml (RecBole's, for the model and the RecBole models it
   subclasses, then ``properties/model/<Model>.yaml``), then the
   dataset's yaml (RecBole's, then ``properties/dataset/<dataset>.yaml``), so a model or dataset default beats a
   project-wide one;
3. ``config_file_list`` (in order), then ``config_dict``, then command-line ``--key=value`` arguments.

Unlike RecBole's ``Config``, ``sys.argv`` is never read: command-line arguments are taken only when passed as
``cmd_args`` (``run.py`` does), so programmatic and pytest callers do not pick up foreign arguments.
"""

import os
from pathlib import Path

import recbole
from recbole.config import Config as RecBoleConfig

from recbole_mamba.quick_start.registry import get_model

REPO_ROOT = Path(__file__).resolve().parents[2]
PROPERTIES_DIR = REPO_ROOT / "properties"
RECBOLE_PROPERTIES_DIR = Path(recbole.__file__).resolve().parent / "properties"
# Relative values of these keys in the project's yaml files mean "relative to the repository", not to the cwd.
REPO_RELATIVE_KEYS = ("data_path", "checkpoint_dir")
# RecBole's default negative sampling (its overall.yaml); the project's overall.yaml sets none, for CE training.
RECBOLE_TRAIN_NEG_SAMPLE_ARGS = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                                 "candidate_num": 0}


def parse_cmd_args(args):
    """``["--key=value", ...]`` -> ``{"key": "value"}`` (values stay strings; ``Config`` converts them)."""
    parsed = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            raise ValueError(f"unrecognized argument '{arg}': write options as --key=value")
        if parsed.get(key, value) != value:
            raise ValueError(f"--{key} given twice with different values ('{parsed[key]}', '{value}'): keep one")
        parsed[key] = value
    return parsed


class Config(RecBoleConfig):
    """RecBole configuration for recbole-mamba: see the module docstring for the loading order.

    Args:
        model: model name (recbole-mamba's or RecBole's) or model class; ``None`` reads ``model`` from the config.
        dataset: dataset name; ``None`` reads ``dataset`` from the config.
        config_file_list: yaml files, later ones overriding earlier ones.
        config_dict: parameters overriding the files.
        cmd_args: ``--key=value`` strings overriding everything (``None``: no command line).
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self._cmd_args = list(cmd_args or [])
        super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)

    def _load_config_files(self, file_list):
        for file in file_list or []:
            if not os.path.isfile(file):
                raise FileNotFoundError(f"config file '{file}' not found: check config_file_list / --config_files")
        return super()._load_config_files(file_list)

    def _load_cmd_line(self):
        return self._convert_config_dict(parse_cmd_args(self._cmd_args))

    def _get_model_and_dataset(self, model, dataset):
        model = self.external_config_dict.get("model") if model is None else model
        dataset = self.external_config_dict.get("dataset") if dataset is None else dataset
        if model is None:
            raise ValueError("no model given: pass model=NAME or set 'model' in the config (run.py: --model=NAME)")
        if dataset is None:
            raise ValueError(
                "no dataset given: pass dataset=NAME or set 'dataset' in the config (run.py: --dataset=NAME)"
            )
        model_class = get_model(model) if isinstance(model, str) else model
        return super()._get_model_and_dataset(model_class, dataset)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        overall = PROPERTIES_DIR / "overall.yaml"
        if not overall.is_file():
            raise FileNotFoundError(
                f"{overall} not found: recbole-mamba reads its defaults from the repository's properties/ folder; "
                "install it from a checkout with pip install -e ."
            )
        # A plugin model that subclasses a RecBole model (SASRecSDPA, ...) starts from its parents' RecBole defaults.
        lineage = [cls.__name__ for cls in reversed(model_class.__mro__) if cls.__name__ != model] + [model]
        layers = [
            (overall, True),
            *[(RECBOLE_PROPERTIES_DIR / "model" / f"{name}.yaml", False) for name in lineage],
            (PROPERTIES_DIR / "model" / f"{model}.yaml", True),
            (RECBOLE_PROPERTIES_DIR / "dataset" / f"{dataset}.yaml", False),
            (PROPERTIES_DIR / "dataset" / f"{dataset}.yaml", True),
        ]
        for path, ours in layers:
            if not path.is_file():
                continue
            values = self._update_internal_config_dict(str(path)) or {}
            if ours:
                for key in REPO_RELATIVE_KEYS:
                    if isinstance(values.get(key), str) and not os.path.isabs(values[key]):
                        self.internal_config_dict[key] = str(REPO_ROOT / values[key])
            if path.parent.name == "dataset":
                known = self.parameters["Dataset"]
                self.parameters["Dataset"] = known + [key for key in values if key not in known]

    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        # The project default (no training negatives) is for CE training, which RecBole 1.2.1 insists on; a model
        # trained otherwise (BPR loss, pairwise/pointwise general models) gets RecBole's own default back.
        trained_with_ce = not hasattr(self.model_class, "input_type") and final.get("loss_type") == "CE"
        if (
            final.get("train_neg_sample_args") is None
            and "train_neg_sample_args" not in self.external_config_dict
            and not trained_with_ce
        ):
            final["train_neg_sample_args"] = dict(RECBOLE_TRAIN_NEG_SAMPLE_ARGS)
        return final
