"""Checks on a finished ``Config`` that turn bad input into one-line errors before anything is loaded or written."""

import os

# RecBole always serves this name from the copy bundled in its wheel, whatever data_path says.
RECBOLE_BUNDLED_DATASETS = ("ml-100k",)


def check_dataset_files(config):
    """Raise ``FileNotFoundError`` if the dataset's interaction file(s) are missing.

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
        raise FileNotFoundError(
            f"dataset '{dataset}' not found: {', '.join(missing)} does not exist; put RecBole atomic files there "
            f"(tab-separated, header like user_id:token item_id:token timestamp:float) "
            f"or point --data_path at the folder that holds {dataset}/"
        )


def check_model_options(config):
    """Raise a one-line error for a ``mamba_backend`` that cannot run here (e.g. ``cuda`` without a GPU)."""
    if config["mamba_backend"] is not None:
        from recbole_mamba.model.mamba_mixer import check_backend

        check_backend(config["mamba_backend"])
