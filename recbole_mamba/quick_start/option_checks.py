"""Checks of the merged configuration, before RecBole normalises it and before anything is loaded or written.

:func:`check_options` validates every option the user set (files, ``config_dict``, command line) and the values
that the run depends on:

- types: a value must have the type of the option's default (an integer where the default is an integer, ...);
- ranges and choices of the options listed in :data:`RULES` and of ``eval_args`` entries, a model's own choices
  (its ``OPTION_CHOICES``), ``mamba_backend`` (:func:`recbole_mamba.ops.backends.check_backend`) and
  ``dist_backend`` (``nccl`` needs CUDA);
- unknown options (and unknown entries of dict options): a warning with the closest known names, or an error
  with ``strict``.

Failures are :class:`~recbole_mamba.errors.InputError` naming the option.
"""

import difflib
import math
import re

import torch
from recbole.utils import ModelType
from recbole.utils.argument_list import dataset_arguments, evaluation_arguments, general_arguments, training_arguments

from recbole_mamba.data.sequence_windows import HELD_OUT_PHASES, TRAIN_MODES
from recbole_mamba.errors import InputError, check_choice
from recbole_mamba.ops.backends import check_backend

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _positive_int(value):
    return _is_int(value) and value > 0


_POSITIVE_INT = ("a positive integer", _positive_int)
_PROBABILITY = ("a probability in [0, 1)", lambda value: _is_number(value) and 0 <= value < 1)
RULES = {  # option -> (what its value must be, test), checked besides its default's type
    **dict.fromkeys(("epochs", "train_batch_size", "eval_batch_size", "MAX_ITEM_LIST_LENGTH", "hidden_size",
                     "embedding_size", "inner_size", "n_layers", "n_heads", "num_layers", "d_state", "d_conv",
                     "expand", "ce_slice_logits", "stopping_step", "nproc", "num_negatives", "eval_slice_logits",
                     "sparse_item_embedding_min_items", "retrieval_heads"), _POSITIVE_INT),
    "world_size": ("a positive integer or -1 (= nproc)", lambda value: value == -1 or _positive_int(value)),
    "offset": ("an integer >= 0", lambda value: _is_int(value) and value >= 0),
    "port": ("a port number", lambda value: str(value).isdigit() and 0 < int(value) < 65536),
    "seq2seq_stride": ("a positive integer or ~ (= MAX_ITEM_LIST_LENGTH)",
                       lambda value: value is None or _positive_int(value)),
    **dict.fromkeys(("dropout_prob", "hidden_dropout_prob", "attn_dropout_prob"), _PROBABILITY),
    "learning_rate": ("a positive number", lambda value: _is_number(value) and 0 < value < math.inf),
    "weight_decay": ("a number >= 0", lambda value: _is_number(value) and 0 <= value < math.inf),
    "topk": ("a positive integer or a list of them",
             lambda value: _positive_int(value) or (isinstance(value, list) and bool(value)
                                                    and all(map(_positive_int, value)))),
}
CHOICES = {
    "train_mode": TRAIN_MODES,
    "learner": ("adam", "sgd", "adagrad", "rmsprop", "sparse_adam"),
}
DIST_BACKENDS = ("gloo", "nccl")  # torch.distributed backends for multi-process training (~ = by device)
DICT_ENTRIES = {  # dict options -> their known entries
    "eval_args": ("split", "order", "group_by", "mode"),
    "train_neg_sample_args": ("distribution", "sample_num", "alpha", "dynamic", "candidate_num"),
}
# Options RecBole reads that have no default in its yaml files.
RECBOLE_RUNTIME_OPTIONS = ("model", "dataset", "config_files", "nproc", "world_size", "ip", "port", "offset",
                           "local_rank", "wandb_project", "encoding")
# Options whose value may have other types than their default's (RecBole converts them).
OTHER_TYPES = {"gpu_id": (str, int), "metrics": (list, str), "load_col": (dict, type(None)),
               "sparse_item_embedding": (str, bool)}
EVAL_MODE = re.compile(r"^(full|labeled|(uni|pop)[1-9][0-9]*)$")


def _same_type(value, default):
    """Whether ``value`` may replace ``default`` (ints for floats too; None only where the default is None)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _type_name(value):
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            tuple: "a list", dict: "a dict"}.get(type(value), type(value).__name__)


def _unknown(where, name, known, strict):
    """A warning (or, with strict, an error) for an unknown name, with close matches."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.7)
    hint = f"did you mean {', '.join(close)}?" if close else "check the spelling"
    if strict:
        raise InputError(where, "unknown option", f"{hint} (unknown options are errors with --strict)")
    return f"{where}: unknown option, ignored; {hint}"


def _check_eval_args(eval_args, sequential):
    if not isinstance(eval_args, dict):
        raise InputError("eval_args", f"{eval_args!r} is not a dict", "give e.g. {split: {LS: valid_and_test}, "
                         "order: TO, group_by: user, mode: full}")
    split = eval_args.get("split")
    if split is not None:
        if not isinstance(split, dict) or len(split) != 1 or next(iter(split)) not in ("RS", "LS"):
            raise InputError("eval_args.split", f"{split!r} is not one of {{RS: [ratios]}} or {{LS: mode}}",
                             "e.g. {LS: valid_and_test} or {RS: [0.8, 0.1, 0.1]}")
        (kind, value), = split.items()
        if kind == "LS":
            check_choice("eval_args.split.LS", value, tuple(HELD_OUT_PHASES))
        elif not (isinstance(value, list) and 1 <= len(value) <= 3 and all(_is_number(r) and r >= 0 for r in value)
                  and sum(value) > 0):
            raise InputError("eval_args.split.RS", f"{value!r} is not a list of 1-3 ratios", "e.g. [0.8, 0.1, 0.1]")
    order = check_choice("eval_args.order", eval_args.get("order", "RO"), ("RO", "TO"))  # RO: RecBole's default
    if "group_by" in eval_args:
        check_choice("eval_args.group_by", eval_args["group_by"], ("user", "none", None))
    mode = eval_args.get("mode", "full")
    modes = mode.items() if isinstance(mode, dict) else [("", mode)]
    for phase, value in modes:
        where = f"eval_args.mode.{phase}" if phase else "eval_args.mode"
        if phase and phase not in ("valid", "test"):
            raise InputError(where, "unknown phase", "use valid and test")
        if not (isinstance(value, str) and EVAL_MODE.match(value)):
            raise InputError(where, f"unknown value {value!r}", "choose full, labeled, uniN or popN (e.g. uni100)")
    if sequential and order != "TO":
        raise InputError("eval_args.order", f"{order}, but sequential models need TO (time order)",
                         "set order: TO (eval_args is replaced as a whole: give all its entries)")


def _check_dist_backend(backend):
    check_choice("dist_backend", backend, DIST_BACKENDS)
    if backend == "nccl" and not torch.cuda.is_available():
        raise InputError("dist_backend", "'nccl' needs CUDA GPUs (none is available here)",
                         "use gloo, or ~ to choose by device")


def known_options(config):
    """Every option this run knows: the loaded yaml layers, RecBole's argument lists and runtime options."""
    return (set(config.internal_config_dict) | set(general_arguments) | set(training_arguments)
            | set(evaluation_arguments) | set(dataset_arguments) | set(RECBOLE_RUNTIME_OPTIONS))


def check_options(config, strict=False):
    """Check ``config`` (a RecBole ``Config`` whose ``final_config_dict`` is merged but not yet normalised).

    Returns the warnings about unknown options (as strings); raises :class:`InputError` on the first problem.
    """
    final, defaults, given = config.final_config_dict, config.internal_config_dict, config.external_config_dict
    warnings = []
    known = known_options(config)
    for key in given:
        if key not in known:
            warnings.append(_unknown(key, key, known, strict))
    for key, entries in DICT_ENTRIES.items():
        if isinstance(given.get(key), dict):
            warnings += [_unknown(f"{key}.{entry}", entry, entries, strict)
                         for entry in given[key] if entry not in entries]
    for key, (expected, test) in RULES.items():  # given values, and defaults a model may read
        if (key in given or final.get(key) is not None) and not test(final.get(key)):
            example = defaults.get(key) if defaults.get(key) is not None else 1
            raise InputError(key, f"{final[key]!r} is not {expected}", f"give {expected}, e.g. --{key}={example}")
    for key in given:
        value, default = final.get(key), defaults.get(key)
        if key in OTHER_TYPES:
            if not isinstance(value, OTHER_TYPES[key]):
                raise InputError(key, f"{value!r} is not {' or '.join(t.__name__ for t in OTHER_TYPES[key])}",
                                 f"give a value like the default, {default!r}")
        elif key not in RULES and default is not None and not _same_type(value, default) and key not in DICT_ENTRIES:
            raise InputError(key, f"{value!r} is not {_type_name(default)}",
                             f"give {_type_name(default)} like the default, {default!r}")
    for key, choices in {**CHOICES, **getattr(config.model_class, "OPTION_CHOICES", {})}.items():
        if key in final:
            check_choice(key, final[key], choices)
    if final.get("mamba_backend") is not None:
        check_backend(final["mamba_backend"])
    if final.get("dist_backend") is not None:
        _check_dist_backend(final["dist_backend"])
    _check_eval_args(final.get("eval_args"), final.get("MODEL_TYPE") == ModelType.SEQUENTIAL)
    return warnings
