"""Checks on a finished ``Config`` that turn bad input into one-line errors before anything is loaded or written."""

import os

from recbole_mamba.data.atomic_check import check_inter_files
from recbole_mamba.errors import InputError

# RecBole always serves this name from the copy bundled in its wheel, whatever data_path says.
RECBOLE_BUNDLED_DATASETS = ("ml-100k",)


def check_input(config):
    """Everything that must hold before a run writes anything (the options were checked by ``Config``)."""
    check_dataset_files(config)
    if config["dataset"] not in RECBOLE_BUNDLED_DATASETS:
        check_inter_files(config)


def check_dataset_files(config):
    """Raise an :class:`InputError` if the dataset's interaction file(s) are missing.

    Without this, RecBole takes a missing folder as a request to download a dataset by that name.
    """
    dataset = config["dataset"]
    if dataset in RECBOLE_BUNDLED_DATASETS:
        return
    folder = config["data_path"]  # RecBole has already joined data_path and the dataset name
    parts = config["benchmark_filename"]
    names = [f"{dataset}.{part}.inter" for part in parts] if parts else [f"{dataset}.inter"]
    missing = [os.path.join(folder, name) for name in names if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise InputError(", ".join(missing), f"dataset '{dataset}' not found",
                         "put RecBole atomic files there (tab-separated, header like user_id:token item_id:token "
                         f"timestamp:float) or point --data_path at the folder that holds {dataset}/")


def check_dataset_size(config, dataset):
    """After loading: the catalogue must be larger than the longest top-k list (RecBole's ranking needs it)."""
    items = dataset.item_num - 1  # id 0 is padding
    if config["eval_type"].name == "RANKING" and max(config["topk"]) >= items:
        raise InputError("topk", f"{max(config['topk'])} is not less than the number of items, {items}",
                         "lower topk (e.g. --topk=[5]) or use a dataset with more items")
