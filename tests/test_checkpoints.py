"""Checkpoints: plain data that loads with ``weights_only=True``, written atomically (a kill mid-save keeps the
previous one), rejected in one line when made for another model or dataset."""

import os
import subprocess
import sys

import pytest
import torch

from recbole_mamba.errors import InputError
from recbole_mamba.quick_start import Config
from recbole_mamba.quick_start.trainer import load_checkpoint

HEADER = "user_id:token\titem_id:token\ttimestamp:float"


@pytest.fixture
def tiny_args(tmp_path):
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    rows = [f"u{user}\ti{(user * 5 + step) % 31}\t{step}" for user in range(8) for step in range(10)]
    (folder / "tiny.inter").write_text("\n".join([HEADER, *rows]) + "\n")
    # eval_step 0: no validation, so a checkpoint is written after every epoch
    return ["--model=RecMamba", "--dataset=tiny", f"--data_path={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'saved'}", "--MAX_ITEM_LIST_LENGTH=8", "--hidden_size=8", "--d_state=4",
            "--eval_step=0", "--show_progress=False"]


def run_cli(tmp_path, args, prelude=""):
    code = f"import sys\n{prelude}\nfrom recbole_mamba.quick_start.cli import main\nsys.exit(main({args!r}))\n"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_checkpoint_is_plain_data_and_loads_with_weights_only(tmp_path, tiny_args):
    done = run_cli(tmp_path, [*tiny_args, "--epochs=1"])
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = (tmp_path / "saved").glob("RecMamba-*.pth")
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["config"]["model"] == "RecMamba" and checkpoint["config"]["hidden_size"] == 8
    assert checkpoint["epoch"] == 0 and "item_embedding.weight" in checkpoint["state_dict"]
    assert not [name for name in os.listdir(tmp_path / "saved") if name.endswith(".tmp")]


KILL_ON_SECOND_RENAME = """
import os, signal
_rename, _calls = os.replace, []
def _replace(src, dst):
    _calls.append(dst)
    if len(_calls) == 2 and str(dst).endswith(".pth"):  # the epoch-1 checkpoint is written, not yet renamed
        os.kill(os.getpid(), signal.SIGKILL)
    return _rename(src, dst)
os.replace = _replace
"""


def test_kill_while_saving_keeps_the_previous_checkpoint(tmp_path, tiny_args):
    done = run_cli(tmp_path, [*tiny_args, "--epochs=3"], prelude=KILL_ON_SECOND_RENAME)
    assert done.returncode == -9, done.stderr[-2000:]
    (path,) = (tmp_path / "saved").glob("RecMamba-*.pth")
    checkpoint = torch.load(path, weights_only=True)  # the epoch-0 checkpoint, whole
    assert checkpoint["epoch"] == 0 and checkpoint["state_dict"]["item_embedding.weight"].shape[1] == 8


def test_checkpoint_of_another_model_or_dataset_is_a_one_line_error(tmp_path, tiny_args):
    assert run_cli(tmp_path, [*tiny_args, "--epochs=1"]).returncode == 0
    (path,) = (tmp_path / "saved").glob("RecMamba-*.pth")
    other = Config(model="SASRec", dataset="ml-100k")
    with pytest.raises(InputError, match="made for model RecMamba on dataset tiny, not SASRec on ml-100k") as error:
        load_checkpoint(path, other)
    assert "\n" not in str(error.value)
    (tmp_path / "cut.pth").write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="cut.pth: not a checkpoint that loads safely"):
        load_checkpoint(tmp_path / "cut.pth")
    with pytest.raises(InputError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pth")
