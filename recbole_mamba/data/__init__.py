"""Datasets and dataloaders for recbole-mamba: RecBole's, or lifelong ones for sequential models.

:func:`create_dataset` and :func:`data_preparation` have RecBole's signatures. For a sequential model
(``MODEL_TYPE`` SEQUENTIAL) with ``lifelong_sequences`` true (the default; see ``properties/overall.yaml``) they
build a :class:`~recbole_mamba.data.lifelong_dataset.LifelongSequentialDataset`, which stores each user's history once
instead of RecBole's ``N_interactions x MAX_ITEM_LIST_LENGTH`` array per field, and RecBole's dataloaders over it.
Everything else (other model types, models with their own RecBole dataset class, benchmark files,
``lifelong_sequences: False``) is delegated to :mod:`recbole.data` unchanged.

Config keys (defaults in ``properties/overall.yaml``; a config without them gets the same defaults):

``lifelong_sequences`` (bool, True)
    Use the lifelong dataset for sequential models.
``train_mode`` (str, ``prefix``)
    ``prefix``: RecBole's training examples (one target each), identical batches and metrics.
    ``seq2seq``: one window of up to ``MAX_ITEM_LIST_LENGTH`` items per ``seq2seq_stride`` slice of each user's
    training history, loss on every position (``fields.TARGET_ITEM_LIST``; ``fields.NEG_ITEM_LIST`` for BPR).
``seq2seq_stride`` (int or ~, ~ = ``MAX_ITEM_LIST_LENGTH``)
    Distance between the ends of consecutive windows; smaller than the length makes windows overlap (each target
    still gets loss once).
"""

import importlib
import os
import pickle
from logging import getLogger

import recbole.data
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.utils import ModelType, set_color
from recbole.utils.argument_list import dataset_arguments

from recbole_mamba.data import fields
from recbole_mamba.data.lifelong_dataloader import (
    LifelongNegSampleEvalDataLoader,
    LifelongRepeatableSampler,
    LifelongTrainDataLoader,
    create_samplers,
)
from recbole_mamba.data.lifelong_dataset import LifelongSequentialDataset

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
    if config["lifelong_sequences"] is False:
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

    stride = config["seq2seq_stride"] or config["MAX_ITEM_LIST_LENGTH"]
    mode = config["train_mode"] or "prefix"
    logger.info(
        f"recbole_mamba.data: dataset class LifelongSequentialDataset, train_mode={mode}"
        + (f" (seq2seq_stride={stride})" if mode == "seq2seq" else "")
        + f", MAX_ITEM_LIST_LENGTH={config['MAX_ITEM_LIST_LENGTH']}"
    )
    file = config["dataset_save_path"] or os.path.join(
        config["checkpoint_dir"], f'{config["dataset"]}-{LifelongSequentialDataset.__name__}.pth'
    )
    if os.path.exists(file):
        with open(file, "rb") as f:
            dataset = pickle.load(f)
        if isinstance(dataset, LifelongSequentialDataset) and all(
            config[arg] == dataset.config[arg]
            for arg in dataset_arguments + ["seed", "repeatable"] + LIFELONG_ARGUMENTS
        ):
            logger.info(set_color("Load filtered dataset from", "pink") + f": [{file}]")
            return dataset
    dataset = LifelongSequentialDataset(config)
    if config["save_dataset"]:
        dataset.save()
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
