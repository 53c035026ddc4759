"""Datasets and dataloaders for recbole-mamba: RecBole's, or lifelong ones for sequential models.

:func:`create_dataset` and :func:`data_preparation` have RecBole's signatures. For a sequential model
(``MODEL_TYPE`` SEQUENTIAL) with ``lifelong_sequences`` true they build a
:class:`~recbole_mamba.data.lifelong_dataset.LifelongSequentialDataset`, which stores each user's history once
instead of RecBole's ``N_interactions x MAX_ITEM_LIST_LENGTH`` array per field, and RecBole's dataloaders over it.
Everything else (other model types, models with their own RecBole dataset class, benchmark files,
``lifelong_sequences: False``) is delegated to :mod:`recbole.data` unchanged.

Config keys (:data:`LIFELONG_ARGUMENTS`; documented, with their defaults, in ``properties/overall.yaml``):
``lifelong_sequences``, ``train_mode`` (``prefix`` or ``seq2seq``, whose batches add ``fields.TARGET_ITEM_LIST``, and
``fields.NEG_ITEM_LIST`` for BPR) and ``seq2seq_stride``.

An entry point: importing it (or any of its modules) applies the RecBole compatibility fixes
(:mod:`recbole_mamba.compat`).
"""

import importlib
import os
import pickle
from logging import getLogger

from recbole_mamba import compat

compat.apply()

import recbole.data  # noqa: E402  (after the fixes)
from recbole.data.dataloader import FullSortEvalDataLoader  # noqa: E402
from recbole.utils import ModelType, set_color  # noqa: E402
from recbole.utils.argument_list import dataset_arguments  # noqa: E402

from recbole_mamba.data import fields  # noqa: E402
from recbole_mamba.data.lifelong_dataloader import (  # noqa: E402
    LifelongNegSampleEvalDataLoader,
    LifelongRepeatableSampler,
    LifelongTrainDataLoader,
    create_samplers,
)
from recbole_mamba.data.lifelong_dataset import LifelongSequentialDataset  # noqa: E402

__all__ = [
    "create_dataset",
    "data_preparation",
    "fields",
    "uses_lifelong_dataset",
    "LifelongSequentialDataset",
    "LifelongTrainDataLoader",
    "LifelongNegSampleEvalDataLoader",
    "LifelongRepeatableSampler",
]

LIFELONG_ARGUMENTS = ["lifelong_sequences", "train_mode", "seq2seq_stride"]


def uses_lifelong_dataset(config):
    """Whether :func:`create_dataset` builds a :class:`LifelongSequentialDataset` for ``config`` (and why not)."""
    if not config["lifelong_sequences"]:
        return False, "lifelong_sequences is False"
    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        return False, f"MODEL_TYPE is {config['MODEL_TYPE'].name}, not SEQUENTIAL"
    if hasattr(importlib.import_module("recbole.data.dataset"), config["model"] + "Dataset"):
        return False, f"RecBole has a dedicated {config['model']}Dataset"
    if config["benchmark_filename"] is not None:
        return False, "benchmark_filename is set (pre-split files)"
    return True, ""


def create_dataset(config):
    """RecBole's ``create_dataset``, or a :class:`LifelongSequentialDataset` (see the module docstring).

    Like RecBole, a dataset saved by ``save_dataset`` under ``checkpoint_dir`` (or ``dataset_save_path``) is reused
    when the dataset arguments (and the lifelong ones) are unchanged.
    """
    logger = getLogger()
    lifelong, reason = uses_lifelong_dataset(config)
    if not lifelong:
        dataset = recbole.data.create_dataset(config)
        logger.info(f"recbole_mamba.data: dataset class {type(dataset).__name__} (RecBole's: {reason})")
        return dataset

    dataset = _saved_dataset(config)
    if dataset is None:
        dataset = LifelongSequentialDataset(config)
        if config["save_dataset"]:
            dataset.save()
    logger.info(
        f"recbole_mamba.data: dataset class LifelongSequentialDataset, train_mode={dataset.train_mode}"
        + (f" (seq2seq_stride={dataset.seq2seq_stride})" if dataset.train_mode == "seq2seq" else "")
        + f", MAX_ITEM_LIST_LENGTH={dataset.max_item_list_len}"
    )
    return dataset


def _saved_dataset(config):
    """The :class:`LifelongSequentialDataset` saved for ``config`` (same dataset and lifelong arguments), or None."""
    file = config["dataset_save_path"] or os.path.join(
        config["checkpoint_dir"], f'{config["dataset"]}-{LifelongSequentialDataset.__name__}.pth'
    )
    if not os.path.exists(file):
        return None
    with open(file, "rb") as f:
        dataset = pickle.load(f)
    if not isinstance(dataset, LifelongSequentialDataset) or any(
        config[arg] != dataset.config[arg] for arg in dataset_arguments + ["seed", "repeatable"] + LIFELONG_ARGUMENTS
    ):
        return None
    getLogger().info(set_color("Load filtered dataset from", "pink") + f": [{file}]")
    return dataset


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``; for a :class:`LifelongSequentialDataset`, the lifelong splits and loaders.

    Returns:
        ``(train_data, valid_data, test_data)``: a :class:`LifelongTrainDataLoader`, and for evaluation RecBole's
        ``FullSortEvalDataLoader`` (``eval_args.mode`` full) or a :class:`LifelongNegSampleEvalDataLoader` (uniN/popN).
    """
    if not isinstance(dataset, LifelongSequentialDataset):
        return recbole.data.data_preparation(config, dataset)
    if config["save_dataloaders"]:
        getLogger().warning("save_dataloaders is not supported by LifelongSequentialDataset: building the loaders")

    built = dataset.build()
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    train_data = LifelongTrainDataLoader(config, built[0], train_sampler, shuffle=config["shuffle"])
    loaders = [train_data]
    for phase, split, sampler in (("valid", built[1], valid_sampler), ("test", built[2], test_sampler)):
        full = config["eval_args"]["mode"][phase] == "full"
        loader_class = FullSortEvalDataLoader if full else LifelongNegSampleEvalDataLoader
        loaders.append(loader_class(config, split, sampler, shuffle=False))

    logger = getLogger()
    logger.info(
        set_color("[Training]: ", "pink") + set_color("train_batch_size", "cyan") + " = "
        + set_color(f'[{config["train_batch_size"]}]', "yellow") + set_color(" train_neg_sample_args", "cyan")
        + ": " + set_color(f'[{config["train_neg_sample_args"]}]', "yellow")
        + set_color(" train_mode", "cyan") + ": " + set_color(f"[{dataset.train_mode}]", "yellow")
        + f" ({len(built[0])} training examples)"
    )
    logger.info(
        set_color("[Evaluation]: ", "pink") + set_color("eval_batch_size", "cyan") + " = "
        + set_color(f'[{config["eval_batch_size"]}]', "yellow") + set_color(" eval_args", "cyan") + ": "
        + set_color(f'[{config["eval_args"]}]', "yellow")
    )
    return tuple(loaders)
