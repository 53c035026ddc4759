"""Shared fixtures: every test runs in its own temporary directory, so nothing is written into the repository."""

import subprocess
import sys
from pathlib import Path

import pytest

from recbole_mamba import compat

compat.apply()  # as every entry point does: tests also drive stock RecBole directly

REPO_ROOT = Path(__file__).resolve().parents[1]

# A SASRec/RecMamba budget that trains one epoch of ML-100k in seconds on 2 CPU cores: the 138 users with 20-25
# ratings (~3k interactions), length 20, one tiny layer.
TINY_ML100K_ARGS = [
    "--dataset=ml-100k",
    "--epochs=1",
    "--MAX_ITEM_LIST_LENGTH=20",
    "--user_inter_num_interval=[20,26)",
    "--train_batch_size=2048",
    "--eval_batch_size=4096",
    "--hidden_size=16",
    "--inner_size=32",
    "--n_layers=1",
    "--n_heads=1",
]


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """Run each test in tmp_path: RecBole writes ./log and ./log_tensorboard relative to the cwd."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def checkpoint_dir(tmp_path):
    return tmp_path / "saved"


@pytest.fixture
def run_cli(tmp_path):
    """Run ``run.py`` with the given arguments in tmp_path; returns the CompletedProcess (text output)."""

    def run(*args, timeout=120):
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "run.py"), *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
        )

    return run
