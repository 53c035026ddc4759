"""recbole_mamba.quick_start and run.py: model lookup, configuration layers, one-line errors, end-to-end runs."""

import importlib
import importlib.util
import logging
import sys
import types

import pytest
import yaml
from conftest import REPO_ROOT, TINY_ML100K_ARGS

from recbole_mamba.errors import InputError
from recbole_mamba.quick_start import Config, get_model, objective_function, run


def load_run_script():
    spec = importlib.util.spec_from_file_location("run_script", REPO_ROOT / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- model lookup
def test_get_model_resolves_recbole_models():
    from recbole.model.sequential_recommender import GRU4Rec, SASRec

    assert get_model("SASRec") is SASRec
    assert get_model("GRU4Rec") is GRU4Rec


def test_get_model_prefers_plugin_models(monkeypatch):
    from recbole.model.sequential_recommender import SASRec

    fake = types.ModuleType("recbole_mamba.model")
    plugin_sasrec = type("SASRec", (SASRec,), {"__module__": "recbole_mamba.model.fake"})
    fake.SASRec = plugin_sasrec
    fake.__all__ = ["SASRec"]
    monkeypatch.setitem(sys.modules, "recbole_mamba.model", fake)
    assert get_model("SASRec") is plugin_sasrec


def test_get_model_resolves_recmamba():
    from recbole_mamba.model import RecMamba

    assert get_model("RecMamba") is RecMamba


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(InputError) as error:
        get_model("SASrec")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("model: unknown model 'SASrec'") and "did you mean SASRec" in message


# ---------------------------------------------------------------- configuration
def test_config_layers_and_priority(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=99", "-q"])  # must be ignored
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump({"epochs": 2, "eval_step": 3, "stopping_step": 4, "learning_rate": 0.5}))
    second.write_text(yaml.safe_dump({"eval_step": 5, "stopping_step": 6}))
    config = Config("SASRec", "ml-100k", config_file_list=[str(first), str(second)],
                    config_dict={"stopping_step": 7, "learning_rate": 0.25}, cmd_args=["--learning_rate=0.125"])
    assert (config["epochs"], config["eval_step"], config["stopping_step"]) == (2, 5, 7)  # later file, then dict
    assert config["learning_rate"] == 0.125  # command line beats the dict
    assert config["load_col"]["inter"] == ["user_id", "item_id", "rating", "timestamp"]  # RecBole's ml-100k.yaml
    assert config["show_progress"] is False  # properties/overall.yaml
    assert config["n_layers"] == 2  # RecBole's SASRec.yaml
    assert config["checkpoint_dir"] == str(REPO_ROOT / "saved")  # repo-relative, not cwd-relative


def test_config_paths_and_negative_sampling_defaults():
    config = Config("GRU4Rec", "somewhere")
    assert config["data_path"] == str(REPO_ROOT / "dataset" / "somewhere")
    assert config["train_neg_sample_args"]["distribution"] == "none"  # CE: no sampled negatives
    config = Config("BPR", "ml-100k")  # a pairwise RecBole model gets RecBole's own sampling back
    assert config["train_neg_sample_args"]["distribution"] == "uniform"


# ---------------------------------------------------------------- one-line errors
def test_missing_dataset_is_a_one_line_error_before_anything_is_written(tmp_path):
    with pytest.raises(InputError) as error:
        run("SASRec", "no-such-data", config_dict={"data_path": str(tmp_path / "data"),
                                                   "checkpoint_dir": str(tmp_path / "saved")})
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "data" / "no-such-data" / "no-such-data.inter") in message
    assert "--data_path" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no log/, saved/, data/


def test_run_script_prints_one_line_errors(capsys):
    main = load_run_script().main
    for argv, expected in [
        (["--model=Foo", "--dataset=ml-100k"], "error: model: unknown model 'Foo'"),
        (["--model=SASRec", "--dataset=nope"], f"error: {REPO_ROOT / 'dataset' / 'nope' / 'nope.inter'}: dataset 'nope' "
                                               "not found"),
        (["--model=SASRec", "--epochs", "3"], "error: --epochs: not an option"),
        (["--model=SASRec", "--config_files=missing.yaml"], "error: missing.yaml: config file not found"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1, err


def test_run_script_cli_exit_status(run_cli):
    result = run_cli("--model=Foo")
    assert result.returncode == 2
    assert result.stderr.startswith("error: model: unknown model 'Foo'") and "Traceback" not in result.stderr


# ---------------------------------------------------------------- end to end
def assert_finished(result, model, model_class_path):
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"model class: {model_class_path}; dataset: ml-100k" in output
    assert "test result" in output
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"test result ({model} on ml-100k): recall@10=") and "ndcg@10=" in summary


def test_run_script_trains_sasrec_end_to_end(run_cli, checkpoint_dir, tmp_path):
    result = run_cli("--model=SASRec", *TINY_ML100K_ARGS, f"--checkpoint_dir={checkpoint_dir}")
    assert_finished(result, "SASRec", "recbole.model.sequential_recommender.sasrec.SASRec")
    assert list(checkpoint_dir.glob("SASRec-*.pth"))
    assert list((tmp_path / "log" / "SASRec").glob("*.log"))


def test_run_script_trains_recmamba_end_to_end(run_cli, checkpoint_dir):
    from recbole_mamba.model import RecMamba

    result = run_cli("--model=RecMamba", *TINY_ML100K_ARGS, f"--checkpoint_dir={checkpoint_dir}")
    assert_finished(result, "RecMamba", f"{RecMamba.__module__}.RecMamba")


def test_objective_function_returns_recbole_result(checkpoint_dir):
    config_dict = {
        "model": "GRU4Rec", "dataset": "ml-100k", "epochs": 1, "MAX_ITEM_LIST_LENGTH": 10,
        "user_inter_num_interval": "[20,22)", "train_batch_size": 2048, "embedding_size": 8, "hidden_size": 8,
        "checkpoint_dir": str(checkpoint_dir),
    }
    root_level = logging.getLogger().level
    try:
        result = objective_function(config_dict=config_dict, saved=False)
    finally:
        logging.getLogger().setLevel(root_level)
    assert result["model"] == "GRU4Rec"
    assert set(result) == {"model", "best_valid_score", "valid_score_bigger", "best_valid_result", "test_result",
                           "synthetic_data"}
    assert "ndcg@10" in result["test_result"]


def test_synthetic_dataset_is_labelled_in_log_and_summary(tmp_path, run_cli):
    from recbole_mamba.data.synthetic_marker import MARKER_NAME

    folder = tmp_path / "data" / "synth"
    folder.mkdir(parents=True)
    rows = [f"{user}\t{(user * 7 + step) % 15 + 1}\t{step}" for user in range(6) for step in range(12)]
    (folder / "synth.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")
    (folder / MARKER_NAME).write_text("made by a test generator, seed 0\n")
    done = run_cli("--model=RecMamba", "--dataset=synth", f"--data_path={tmp_path / 'data'}", "--epochs=1",
                   "--MAX_ITEM_LIST_LENGTH=8", "--hidden_size=8", "--train_mode=seq2seq", "--show_progress=False")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("test result (RecMamba on synth, SYNTHETIC data): ")
    assert "dataset synth is SYNTHETIC, not real data: made by a test generator, seed 0" in done.stdout + done.stderr


def test_cuda_backend_without_gpu_fails_before_anything_is_written(tmp_path, run_cli):
    done = run_cli("--model=RecMamba", "--dataset=ml-100k", "--mamba_backend=cuda")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: mamba_backend: 'cuda' needs a CUDA GPU")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "log").exists() and not (tmp_path / "saved").exists()
