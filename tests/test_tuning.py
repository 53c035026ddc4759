"""Hyper-parameter search: params files, RecBole's exhaustive search on hyperopt 0.3, run_hyper.py with hyperopt
and with Ray Tune (ASHA, one report per validation epoch), and one-line errors for bad flags and params files."""

import json
import logging
import math

import pytest

from conftest import TINY_ML100K_ARGS
from recbole_mamba.errors import InputError
from recbole_mamba.quick_start.tuning import cli
from recbole_mamba.quick_start.tuning.params import read_params

TINY_RECMAMBA = [*TINY_ML100K_ARGS, "--d_state=4"]


@pytest.fixture(autouse=True)
def keep_log_level():
    """objective_function, as RecBole's, sets the root logger to ERROR: restore it for the other tests."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def write(path, text):
    path.write_text(text)
    return str(path)


def test_recbole_exhaustive_search_runs_every_combination_once_on_current_hyperopt():
    from recbole.trainer.hyper_tuning import HyperTuning

    seen = []

    def objective(config_dict, config_file_list):
        seen.append((config_dict["x"], config_dict["y"]))
        return {"model": "M", "best_valid_score": config_dict["x"], "valid_score_bigger": True,
                "best_valid_result": {}, "test_result": {}}

    tuner = HyperTuning(objective, params_dict={"choice": {"x": [1, 2, 3], "y": ["a", "b"]}}, algo="exhaustive")
    tuner.run()  # hyperopt 0.3.0 without the compat fix: AttributeError: 'RandomState' object has no 'integers'
    assert sorted(seen) == [(x, y) for x in (1, 2, 3) for y in ("a", "b")]


@pytest.mark.parametrize("algo", ["exhaustive", "random", "bayes"])
def test_hyperopt_algorithms_record_each_trial(tmp_path, monkeypatch, algo):
    from recbole_mamba.quick_start.tuning import hyperopt_search
    from recbole_mamba.quick_start.tuning.study import Study

    def objective_function(config_dict, config_file_list):  # stands in for training: the score is x
        return {"best_valid_score": config_dict["x"], "best_valid_result": {"ndcg@10": config_dict["x"]},
                "test_result": {"ndcg@10": config_dict["x"] / 2}}

    monkeypatch.setattr(hyperopt_search, "objective_function", objective_function)
    space = "x choice [1, 2, 3]\n" + ("y quniform 0,4,2\n" if algo == "exhaustive" else "y uniform 0,1\n")
    study = Study("M", "D", (), {}, read_params(write(tmp_path / "p.hyper", space)))
    records = hyperopt_search.search(study, algo, max_evals=12, seed=1, bigger=True, on_trial=lambda records: None)
    if algo == "exhaustive":  # every combination once, then the search ends
        assert sorted((r.params["x"], r.params["y"]) for r in records) == [(x, y) for x in (1, 2, 3) for y in (0, 2, 4)]
    else:
        assert len(records) == 12 and all(0 <= record.params["y"] <= 1 for record in records)
    assert all(record.test_result == {"ndcg@10": record.params["x"] / 2} for record in records)


def test_params_file_gives_hyperopt_and_ray_spaces(tmp_path):
    from hyperopt.pyll.stochastic import sample

    params = read_params(write(tmp_path / "p.hyper", "learning_rate loguniform -8, -4\n\n"
                                                    "hidden_size quniform 16,64,16\ndropout_prob uniform 0.1,0.3\n"
                                                    "block_style choice ['paper', 'x y']\n"))
    assert [param.name for param in params] == ["learning_rate", "hidden_size", "dropout_prob", "block_style"]
    assert params[1].extremes() == [16, 64] and params[0].extremes() == pytest.approx([math.exp(-8), math.exp(-4)])
    drawn = sample({param.name: param.hyperopt() for param in params})
    values = {param.name: param.value(drawn[param.name]) for param in params}
    assert math.exp(-8) <= values["learning_rate"] <= math.exp(-4) and 0.1 <= values["dropout_prob"] <= 0.3
    assert type(values["hidden_size"]) is int and values["hidden_size"] in (16, 32, 48, 64)
    assert values["block_style"] in ("paper", "x y")
    ray_learning_rate, ray_hidden = params[0].ray(), params[1].ray()
    assert (ray_learning_rate.lower, ray_learning_rate.upper) == pytest.approx((math.exp(-8), math.exp(-4)))
    assert (ray_hidden.lower, ray_hidden.upper) == (16, 64) and params[3].ray().categories == ["paper", "x y"]


@pytest.mark.parametrize("text, message", [
    ("learning_rate choise [0.1]\n", "p.hyper:1: 'learning_rate choise [0.1]' is not 'name type value'"),
    ("\nhidden_size choice 64\n", "p.hyper:2: the choices of hidden_size, 64, are not a non-empty list"),
    ("dropout_prob uniform 0.5,0.1\n", "p.hyper:1: uniform of dropout_prob: '0.5,0.1' is not low,high"),
    ("hidden_size quniform 16,64\n", "p.hyper:1: quniform of hidden_size: '16,64' is not low,high,q"),
    ("d_state choice [4]\nd_state choice [8]\n", "p.hyper:2: d_state is already searched at"),
    ("\n", "p.hyper: no parameters to search"),
])
def test_bad_params_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(InputError) as error:
        read_params(write(tmp_path / "p.hyper", text))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_shipped_search_spaces_are_found_by_model_and_accepted_by_the_checks():
    from recbole_mamba.quick_start.tuning.study import Study

    for model, name in [("RecMamba", "RecMamba"), ("SASRecSDPA", "SASRec"), ("GRU4RecAllPositions", "GRU4Rec")]:
        path = cli.default_params_file(model)
        assert path.name == f"{name}.hyper"
        Study(model, "ml-100k", (), {}, read_params(path), strict=True).check()  # every choice is a valid option


@pytest.mark.parametrize("args, params, message", [
    (["--max_evals=0"], None, "error: command line: argument --max_evals: invalid positive int value: '0'"),
    (["--tool=ray", "--algo=random"], None, "error: --algo: applies to --tool=hyperopt, not --tool=ray"),
    (["--tool=grid"], None, "error: command line: argument --tool: invalid choice: 'grid'"),
    (["--epochs", "3"], None, "error: --epochs: not an option; write options as --key=value"),
    (["--params_file=missing.hyper"], None, "error: missing.hyper: cannot read the params file"),
    (["--model=SASRc"], None, "error: model: unknown model 'SASRc'"),
    ([], "dropout_prob choice [0.2, 1.5]", "p.hyper:1: dropout_prob = 1.5: 1.5 is not a probability in [0, 1)"),
    ([], "hiden_size choice [8]", "p.hyper:1: unknown option; did you mean hidden_size?"),
    (["--epochs=1"], "epochs choice [1, 2]", "p.hyper:1: epochs is searched and also fixed (--epochs)"),
    ([], "dropout_prob uniform 0.1,0.3", "error: --algo: exhaustive search needs discrete parameters"),
    (["--MAX_ITEM_LIST_LENGTH=abc"], "d_state choice [4]", "error: MAX_ITEM_LIST_LENGTH: 'abc' is not"),
])
def test_bad_command_lines_are_one_line_errors_before_any_trial(tmp_path, capsys, args, params, message):
    if params:
        args = [*args, "--params_file=" + write(tmp_path / "p.hyper", params + "\n")]
    assert cli.main(["--dataset=ml-100k", f"--output_file={tmp_path / 'r.txt'}", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert not captured.out and not (tmp_path / "r.txt").exists()


def test_hyperopt_exhaustive_search_records_every_trial_failures_and_the_best(tmp_path, capsys, checkpoint_dir):
    # RecBole's SASRec rejects 3 heads for hidden size 16 when it is built: that trial fails, the search goes on.
    params = write(tmp_path / "p.hyper", "n_heads choice [1, 3]\nlearning_rate choice [0.001]\n")
    fixed = [arg for arg in TINY_ML100K_ARGS if not arg.startswith("--n_heads")]
    output = tmp_path / "results.md"
    status = cli.main(["--model=SASRec", f"--params_file={params}", "--tool=hyperopt", "--algo=exhaustive",
                       "--max_evals=5", f"--output_file={output}", f"--checkpoint_dir={checkpoint_dir}", *fixed])
    out = capsys.readouterr().out
    assert status == 0, out
    text = output.read_text()
    assert text.split("\n\n")[0] in out  # printed and written: the best trial, its parameters and metrics
    assert "best parameters: {'n_heads': 1, 'learning_rate': 0.001}" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 2  # exhaustive: both combinations, once each (max_evals is only an upper bound)
    assert any("| 3 | 0.001 | failed: ValueError: " in row for row in rows)
    done = next(row for row in rows if "| 1 | 0.001 | done |" in row)
    assert done.count("|") == 2 + 2 + 1 + 2 * 4  # trial, 2 params, status, valid and test: 4 metrics each


def test_ray_asha_search_reports_each_epoch_and_keeps_checkpoints_under_the_storage_path(tmp_path, capsys,
                                                                                        checkpoint_dir):
    params = write(tmp_path / "p.hyper",
                   "learning_rate choice [0.0001, 0.01]\nblock_style choice ['mamba4rec', 'paper']\n")
    storage = tmp_path / "ray"
    output = tmp_path / "results.md"
    status = cli.main(["--model=RecMamba", f"--params_file={params}", "--tool=ray", "--scheduler=asha",
                       "--num_samples=2", "--epochs=2", f"--storage_path={storage}", f"--output_file={output}",
                       f"--checkpoint_dir={checkpoint_dir}", *[arg for arg in TINY_RECMAMBA if arg != "--epochs=1"]])
    out = capsys.readouterr().out
    assert status == 0, out
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 2 and output.read_text().split("\n\n")[0] in out
    (experiment,) = storage.iterdir()
    trials = sorted(path for path in experiment.iterdir() if path.is_dir())
    assert len(trials) == 2
    for trial, row in zip(trials, rows):
        reports = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        epochs = [report["epoch"] for report in reports if "epoch" in report]
        if "| done |" in row:  # one report per validation epoch, then the test result with the best checkpoint
            assert epochs == [1, 2] and len(reports) == 3 and "test/ndcg@10" in reports[-1]
            assert len(list(trial.glob("checkpoint_*/RecMamba-*.pth"))) == 1
        else:  # ASHA stopped it after the first epoch: the worse of the two
            assert "| stopped at epoch 1 |" in row and epochs == [1] and len(reports) == 1
    assert "| done |" in "".join(rows)
    assert not list(checkpoint_dir.glob("*.pth"))  # trial checkpoints live under the Ray storage path only
