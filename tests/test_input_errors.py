"""Bad input as a careful user meets it: every case is one line ``error: <where>: <problem>; <fix>`` on stderr,
exit status 2, and nothing written (no log/, log_tensorboard/ or checkpoint); unknown options warn (or fail with
--strict); a diverging loss stops with one line; internal bugs keep their traceback."""

import pytest

from recbole_mamba.quick_start import cli

HEADER = "user_id:token\titem_id:token\ttimestamp:float"


def rows(users=4, per_user=6):
    return [f"u{user}\ti{(user * 3 + step) % 23}\t{step}" for user in range(users) for step in range(per_user)]


def write_dataset(tmp_path, text, name="tiny"):
    folder = tmp_path / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(text)
    return folder / f"{name}.inter"


def main(tmp_path, *args, name="tiny"):
    """run.py's main on the tiny dataset with a tiny model; ``args`` override these defaults."""
    defaults = ["--model=RecMamba", f"--dataset={name}", f"--data_path={tmp_path / 'data'}",
                f"--checkpoint_dir={tmp_path / 'saved'}", "--epochs=1", "--MAX_ITEM_LIST_LENGTH=8", "--hidden_size=8",
                "--d_state=4"]
    given = {arg.partition("=")[0] for arg in args}
    return cli.main([arg for arg in defaults if arg.partition("=")[0] not in given] + list(args))


def assert_one_line_error(capsys, tmp_path, status, *fragments):
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not any((tmp_path / name).exists() for name in ("log", "log_tensorboard", "saved")), err
    return err


GOOD = "\n".join([HEADER, *rows()]) + "\n"
FILE_CASES = {
    "header only": (HEADER + "\n", ["tiny.inter: no interactions", "header only"]),
    "empty file": ("", ["tiny.inter: empty file", "header like user_id:token"]),
    "no timestamp": ("user_id:token\titem_id:token\nu1\ti1\n", ["tiny.inter:1: no timestamp field",
                                                                   "TIME_FIELD"]),
    "no item_id": ("user_id:token\ttimestamp:float\nu1\t1\n", ["tiny.inter:1: no item_id field", "ITEM_ID_FIELD"]),
    "bad header type": ("user_id:int\titem_id:token\ttimestamp:float\n", ["tiny.inter:1: header field 'user_id:int'"]),
    "text timestamp": (GOOD.replace("u1\ti4\t1\n", "u1\ti4\tyesterday\n"),
                       ["tiny.inter:9: timestamp value 'yesterday' is not a number"]),
    "short row": (GOOD.replace("u2\ti6\t0\n", "u2\ti6\n"), ["tiny.inter:14: 2 fields, the header has 3"]),
    "fewer items than topk": ("\n".join([HEADER, *(f"u{u}\ti{s % 3}\t{s}" for u in range(4) for s in range(6))]) + "\n",
                              ["topk: 10 is not less than the number of items, 3"]),
    "long row": (GOOD.replace("u0\ti0\t0\n", "u0\ti0\t0\textra\n"), ["tiny.inter:2: 4 fields, the header has 3"]),
    "two per user": ("\n".join([HEADER, *rows(per_user=2)]) + "\n",
                     ["no user has 3 interactions", "valid_and_test", "longest history has 2"]),
}


@pytest.mark.parametrize("case", FILE_CASES)
def test_malformed_atomic_file(case, tmp_path, capsys):
    text, fragments = FILE_CASES[case]
    write_dataset(tmp_path, text)
    assert_one_line_error(capsys, tmp_path, main(tmp_path), *fragments)


OPTION_CASES = {
    "--MAX_ITEM_LIST_LENGTH=0": "MAX_ITEM_LIST_LENGTH: 0 is not a positive integer",
    "--MAX_ITEM_LIST_LENGTH=-5": "MAX_ITEM_LIST_LENGTH: -5 is not a positive integer",
    "--MAX_ITEM_LIST_LENGTH=abc": "MAX_ITEM_LIST_LENGTH: 'abc' is not a positive integer",
    "--hidden_size=0": "hidden_size: 0 is not a positive integer",
    "--d_state=0": "d_state: 0 is not a positive integer",
    "--learning_rate=-1": "learning_rate: -1 is not a positive number",
    "--dropout_prob=1.5": "dropout_prob: 1.5 is not a probability",
    "--repeatable=maybe": "repeatable: 'maybe' is not true/false",
    "--block_style=sasrec": "block_style: unknown value 'sasrec'; choose one of paper, mamba4rec",
    "--train_mode=all": "train_mode: unknown value 'all'",
    "--eval_args={'split':{'LS':'valid_and_test'},'order':'XO'}": "eval_args.order: unknown value 'XO'",
    "--eval_args={'split':{'LS':'valid_and_test'}}": "eval_args.order: RO, but sequential models need TO",
    "--eval_args={'mode':'uni0'}": "eval_args.mode: unknown value 'uni0'",
    "--model=RecMambo": "model: unknown model 'RecMambo'",
    "--epochs": "--epochs: not an option; write options as --key=value",
}


@pytest.mark.parametrize("arg", OPTION_CASES)
def test_bad_option(arg, tmp_path, capsys):
    write_dataset(tmp_path, GOOD)
    assert_one_line_error(capsys, tmp_path, main(tmp_path, arg), OPTION_CASES[arg])


def test_epochs_zero_is_rejected_before_training(tmp_path, capsys):
    write_dataset(tmp_path, GOOD)
    assert_one_line_error(capsys, tmp_path, main(tmp_path, "--epochs=0"), "epochs: 0 is not a positive integer")


def test_invalid_yaml_config_file(tmp_path, capsys):
    write_dataset(tmp_path, GOOD)
    (tmp_path / "bad.yaml").write_text("epochs: 1\nhidden_size: [8\n")
    err = assert_one_line_error(capsys, tmp_path, main(tmp_path, f"--config_files={tmp_path / 'bad.yaml'}"),
                                "bad.yaml:", "not valid YAML")
    assert "Traceback" not in err


def test_missing_config_file(tmp_path, capsys):
    write_dataset(tmp_path, GOOD)
    assert_one_line_error(capsys, tmp_path, main(tmp_path, "--config_files=missing.yaml"),
                          "missing.yaml: config file not found")


@pytest.mark.parametrize("arg, fragment", [
    ("--hiden_size=32", "hiden_size: unknown option, ignored; did you mean hidden_size?"),
    ("--eval_args={'split':{'LS':'valid_and_test'},'order':'TO','mode':'full','ordr':'TO'}",
     "eval_args.ordr: unknown option, ignored; did you mean order?"),
])
def test_unknown_options_warn_and_fail_with_strict(arg, fragment, tmp_path, capsys, caplog):
    write_dataset(tmp_path, GOOD)
    assert main(tmp_path, arg, "--show_progress=False") == 0
    assert fragment in caplog.text
    capsys.readouterr()
    # --strict: the same option is an error, before anything is written
    for name in ("log", "log_tensorboard", "saved"):
        __import__("shutil").rmtree(tmp_path / name, ignore_errors=True)
    assert_one_line_error(capsys, tmp_path, main(tmp_path, arg, "--strict"),
                          fragment.split(",")[0], "errors with --strict")


def test_diverging_loss_is_one_line_naming_epoch_batch_and_checkpoint(tmp_path, capsys):
    write_dataset(tmp_path, "\n".join([HEADER, *rows(users=8, per_user=12)]) + "\n")
    status = main(tmp_path, "--learning_rate=1e30", "--epochs=3", "--train_batch_size=2", "--show_progress=False")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[-1].startswith("error: training: the loss became") and "at epoch" in err[-1], err
    assert "batch" in err[-1] and "learning_rate" in err[-1]


def test_internal_bug_keeps_traceback_and_exits_1(tmp_path, capsys, monkeypatch):
    from recbole_mamba.quick_start import pipeline

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(pipeline, "check_input", broken)
    write_dataset(tmp_path, GOOD)
    assert main(tmp_path) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: an internal bug" in err and "please report it" in err
