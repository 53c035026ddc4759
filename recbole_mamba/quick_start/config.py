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

Relative ``data_path`` and ``checkpoint_dir`` values written in ``properties/`` are relative to the repository when
running from a checkout (so ``dataset/`` is the repository's), and to the current directory for an installed
package, as in RecBole. Values given by the user (files, ``config_dict``, command line) are always left as given.
"""

import os
import sys
from pathlib import Path

import recbole
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_mamba.errors import InputError
from recbole_mamba.locations import checkout_root, properties_dir
from recbole_mamba.quick_start.option_checks import check_options
from recbole_mamba.quick_start.registry import get_model

RECBOLE_PROPERTIES_DIR = Path(recbole.__file__).resolve().parent / "properties"
# In a checkout, relative values of these keys in the project's yaml files are relative to the repository.
REPO_RELATIVE_KEYS = ("data_path", "checkpoint_dir")


def recbole_default(key):
    """The value of ``key`` in RecBole's own ``overall.yaml`` (read, not restated here)."""
    with open(RECBOLE_PROPERTIES_DIR / "overall.yaml", encoding="utf-8") as file:
        return yaml.safe_load(file)[key]


def parse_cmd_args(args):
    """``["--key=value", ...]`` -> ``{"key": "value"}`` (values stay strings; ``Config`` converts them)."""
    parsed = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            raise InputError(arg, "not an option", "write options as --key=value")
        if parsed.get(key, value) != value:
            raise InputError(f"--{key}", f"given twice with different values ('{parsed[key]}', '{value}')",
                             "keep one")
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
        strict: unknown options are errors instead of warnings.

    Bad options raise :class:`~recbole_mamba.errors.InputError` (see :mod:`.option_checks`); warnings about unknown
    options are kept in ``option_warnings``.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None,
                 strict=False):
        self._recbole_files = None
        self._cmd_args = list(cmd_args or [])
        self._strict = strict
        self.option_warnings = []
        super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)

    def _load_config_files(self, file_list):
        for file in file_list or []:
            if not os.path.isfile(file):
                raise InputError(file, "config file not found", "check --config_files / config_file_list")
            try:
                with open(file, encoding="utf-8") as handle:
                    yaml.load(handle, Loader=self.yaml_loader)
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f"{file}:{mark.line + 1}" if mark is not None else file
                raise InputError(where, f"not valid YAML ({getattr(error, 'problem', None) or error})",
                                 "fix the syntax (one 'key: value' per line)") from None
        return super()._load_config_files(file_list)

    def _recbole_loss_type(self, loss_type):
        """The RecBole loss type (CE or BPR) a plugin model's ``loss_type`` is fed like (``RECBOLE_LOSS_TYPES``)."""
        known = getattr(self.model_class, "RECBOLE_LOSS_TYPES", {})
        return known.get(loss_type, loss_type) if isinstance(loss_type, str) else loss_type

    def _set_default_parameters(self):
        self.option_warnings = check_options(self, self._strict)
        # RecBole derives MODEL_INPUT_TYPE from CE (pointwise) or BPR (pairwise) only: it sees a plugin loss type
        # (sampled_softmax, BCE) as the one it is fed like, then the user's value is put back.
        loss_type = self.final_config_dict.get("loss_type")
        self.final_config_dict["loss_type"] = self._recbole_loss_type(loss_type)
        try:
            super()._set_default_parameters()
        finally:
            self.final_config_dict["loss_type"] = loss_type

    def _load_cmd_line(self):
        return self._convert_config_dict(parse_cmd_args(self._cmd_args))

    def _get_model_and_dataset(self, model, dataset):
        model = self.external_config_dict.get("model") if model is None else model
        dataset = self.external_config_dict.get("dataset") if dataset is None else dataset
        if model is None:
            raise InputError("model", "no model given", "pass model=NAME or set 'model' in the config (--model=NAME)")
        if dataset is None:
            raise InputError("dataset", "no dataset given",
                             "pass dataset=NAME or set 'dataset' in the config (--dataset=NAME)")
        model_class = get_model(model) if isinstance(model, str) else model
        return super()._get_model_and_dataset(model_class, dataset)

    def _update_internal_config_dict(self, file):
        values = super()._update_internal_config_dict(file)
        if self._recbole_files is not None:
            self._recbole_files.append(Path(file).resolve())
        return values

    def _load_internal_config_dict(self, model, model_class, dataset):
        self._recbole_files = []  # the files RecBole's own layering loads, in its order
        super()._load_internal_config_dict(model, model_class, dataset)
        recbole_files, self._recbole_files = self._recbole_files, None
        properties, repo_root = properties_dir(), checkout_root()
        # Our overall.yaml replaces RecBole's overall.yaml and sample.yaml; every other file RecBole loaded (model,
        # dataset, model-type quick-start yaml such as knowledge_base.yaml's load_col) is re-applied over it for the
        # keys it sets, in RecBole's order; then a plugin model's RecBole parents, then our model and dataset yaml.
        replaced = {RECBOLE_PROPERTIES_DIR / "overall.yaml", RECBOLE_PROPERTIES_DIR / "dataset" / "sample.yaml"}
        parents = [cls.__name__ for cls in reversed(model_class.__mro__) if cls.__name__ != model]
        layers = [
            (properties / "overall.yaml", "ours"),
            *[(path, "recbole-again") for path in recbole_files if path not in replaced],
            *[(RECBOLE_PROPERTIES_DIR / "model" / f"{name}.yaml", "recbole") for name in parents],
            (properties / "model" / f"{model}.yaml", "ours"),
            (properties / "dataset" / f"{dataset}.yaml", "ours"),
        ]
        overall_keys = None
        for path, kind in layers:
            if not path.is_file():
                continue
            with open(path, encoding="utf-8") as file:
                values = yaml.load(file.read(), Loader=self.yaml_loader) or {}
            if overall_keys is None:
                overall_keys = set(values)
            if kind == "recbole-again":
                values = {key: value for key, value in values.items() if key in overall_keys}
            self.internal_config_dict.update(values)
            if kind == "ours" and repo_root is not None:
                for key in REPO_RELATIVE_KEYS:
                    if isinstance(values.get(key), str) and not os.path.isabs(values[key]):
                        self.internal_config_dict[key] = str(repo_root / values[key])
            if path.parent.name == "dataset":
                known = self.parameters["Dataset"]
                self.parameters["Dataset"] = known + [key for key in values if key not in known]

    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        if final.get("show_progress") is None:  # progress bars for a person at a terminal, clean logs elsewhere
            final["show_progress"] = sys.stderr.isatty()
        # The project default (no training negatives) is for CE training (and the plugin's sampled softmax, which
        # draws its own), which RecBole 1.2.1 insists on; a model trained otherwise (BPR or BCE loss,
        # pairwise/pointwise general models) gets RecBole's own default back.
        trained_with_ce = (not hasattr(self.model_class, "input_type")
                           and self._recbole_loss_type(final.get("loss_type")) == "CE")
        if (
            final.get("train_neg_sample_args") is None
            and "train_neg_sample_args" not in self.external_config_dict
            and not trained_with_ce
        ):
            final["train_neg_sample_args"] = recbole_default("train_neg_sample_args")
        return final
