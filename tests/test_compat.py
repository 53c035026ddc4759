"""One test per fix in recbole_mamba/compat.py (applied by conftest.py); each exercises what fails on numpy 2 /
pandas 3 / torch >= 2.6 (graph models on SciPy: tests/test_recbole_models.py)."""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

HEADER = "user_id:token\titem_id:token\ttimestamp:float\ttags:token_seq\tscore:float\tcolor:token\n"
ROWS = ["u1\ti1\t1\ta b\t1.0\tred\n", "u1\ti2\t2\tc\t\t\n", "u2\ti1\t3\tb\t3.0\tblue\n"]  # row 2: NaN float/token


def load_tiny_dataset(tmp_path, rows=ROWS, load_col=None):
    """RecBole's Dataset (before build(): its inter_feat is still a DataFrame) over a 3-row atomic file."""
    from recbole.data.dataset import Dataset

    from recbole_mamba.quick_start import Config

    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.inter").write_text(HEADER + "".join(rows))
    config = Config("BPR", "tiny", config_dict={"data_path": str(tmp_path), "load_col": load_col})
    return Dataset(config).inter_feat


def test_numpy_aliases_let_recbole_config_construct(monkeypatch):
    from recbole.config import Config as RecBoleConfig

    for name in ("float_", "complex_", "unicode_"):
        assert hasattr(np, name)
    monkeypatch.setattr(sys, "argv", ["recbole"])  # RecBole's own Config reads sys.argv
    config = RecBoleConfig(model="BPR", dataset="ml-100k")
    assert config["model"] == "BPR"


def test_recbole_keeps_safe_torch_load():
    """No global switch to weights_only=False: RecBole's modules see torch itself (the plugin's checkpoints are
    plain data; see tests/test_checkpoints.py)."""
    import recbole.trainer.trainer as trainer_module

    assert trainer_module.torch is torch


def test_empty_token_seq_cell_loads_as_empty_sequence(tmp_path):
    rows = [ROWS[0], ROWS[1].replace("\tc\t", "\t\t"), ROWS[2]]
    inter = load_tiny_dataset(tmp_path, rows)
    assert [len(tags) for tags in inter["tags"]] == [2, 0, 1]


def test_token_seq_field_keeps_per_row_lengths(tmp_path):
    inter = load_tiny_dataset(tmp_path)
    assert [len(tags) for tags in inter["tags"]] == [2, 1, 1]
    assert len({int(tags[0]) for tags in inter["tags"]}) == 3  # a, c, b: distinct ids


def test_pandas_agg_len_outside_recbole_is_untouched():
    assert pd.Series([[1, 2], [3]]).agg(len) == 2


def test_nan_float_and_token_cells_are_filled(tmp_path):
    inter = load_tiny_dataset(tmp_path, load_col={"inter": ["user_id", "item_id", "timestamp", "score", "color"]})
    assert inter["score"].tolist() == pytest.approx([1.0, 2.0, 3.0])  # NaN float -> column mean
    assert inter["color"].tolist()[1] == 0  # NaN token -> [PAD]


def test_dataset_load_emits_no_chained_assignment_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ChainedAssignmentError)
        load_tiny_dataset(tmp_path)


def test_importing_recbole_sequential_models_leaves_anomaly_detection_off():
    """RecBole's SINE module enables anomaly detection process-wide on import; compat switches it back off."""
    import importlib

    importlib.import_module("recbole.model.sequential_recommender")
    assert not torch.is_anomaly_enabled()


@pytest.mark.parametrize("module_name", ["recbole.utils.logger", "recbole.trainer.trainer", "recbole.data.utils",
                                         "recbole.data.dataset.dataset"])
def test_recbole_creates_folders_without_a_race(module_name, tmp_path, monkeypatch):
    """Another process creates the folder between RecBole's existence check and its makedirs."""
    import importlib
    import os

    folder = tmp_path / "log" / "RecMamba"
    folder.mkdir(parents=True)
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # every check says: not there yet
    importlib.import_module(module_name).ensure_dir(str(folder))
    assert folder.is_dir()
