"""Train and evaluate a recbole-mamba or RecBole model.

    python run.py --model=RecMamba --dataset=kuairand [--config_files="a.yaml b.yaml"] [--key=value ...]

Every other ``--key=value`` is a RecBole/recbole-mamba parameter overriding the yaml files (e.g. ``--epochs=5``).
Bad input (unknown model, missing dataset or config file, unavailable backend) ends with one line on stderr,
``error: <what is wrong and how to fix it>``, and exit status 2.
"""

import sys
from pathlib import Path

DEFAULTS = {"model": "RecMamba", "dataset": "kuairand"}
OWN_OPTIONS = ("model", "dataset", "config_files")
PLUGIN_DIR = Path(__file__).resolve().parent / "recbole_mamba"


def parse_args(argv):
    """Split the command line into run()'s model, dataset, config files and the remaining ``--key=value`` args."""
    from recbole_mamba.quick_start import parse_cmd_args

    options = {**DEFAULTS, **parse_cmd_args(argv)}  # parse_cmd_args rejects anything but --key=value
    config_files = options.get("config_files", "").split() or None
    rest = [arg for arg in argv if arg[2:].partition("=")[0] not in OWN_OPTIONS]
    return options["model"], options["dataset"], config_files, rest


def raised_by_plugin(error):
    """True if the innermost frame of ``error`` is recbole-mamba's code (its input and backend checks)."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(PLUGIN_DIR)


def main(argv):
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__.strip())
        return 0
    try:
        model, dataset, config_files, cmd_args = parse_args(argv)
        from recbole_mamba.quick_start import run

        result = run(model=model, dataset=dataset, config_file_list=config_files, cmd_args=cmd_args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        if not raised_by_plugin(error):
            raise  # not one of our checks: keep the traceback
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    metrics = ", ".join(f"{name}={value:.4f}" for name, value in result["test_result"].items())
    label = f"{dataset}, SYNTHETIC data" if result["synthetic_data"] else dataset
    print(f"test result ({model} on {label}): {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
