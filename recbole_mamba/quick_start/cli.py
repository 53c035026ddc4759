"""Command line: train and evaluate a recbole-mamba or RecBole model.

    python run.py --model=RecMamba --dataset=kuairand [--config_files="a.yaml b.yaml"] [--strict] [--key=value ...]
    python run.py ... --resume=saved/RecMamba-<date>.pth    (continue an interrupted run from its checkpoint)
    python -m recbole_mamba ...    (or the console script: recbole-mamba ...), same flags

Every other ``--key=value`` is a RecBole/recbole-mamba parameter overriding the yaml files (e.g. ``--epochs=5``).
Unknown options are warnings, errors with ``--strict``. Bad input (options, model, config or dataset files, an
unavailable backend, a diverging loss) ends with one line on stderr, ``error: <file or key>: <problem>; <fix>``, and
exit status 2; bad input is found before anything is written. Any other failure is a bug: it keeps its traceback
and exits with status 1.
"""

import sys
import traceback

from recbole_mamba.errors import InputError

DEFAULTS = {"model": "RecMamba", "dataset": "kuairand"}
OWN_OPTIONS = ("model", "dataset", "config_files", "resume")
STRICT_FLAG = "--strict"


def parse_args(argv):
    """Split the command line into run()'s model, dataset, config files, ``--strict``, the remaining
    ``--key=value`` args and ``--resume``'s checkpoint (or None)."""
    from recbole_mamba.quick_start.config import parse_cmd_args

    strict = STRICT_FLAG in argv
    argv = [arg for arg in argv if arg != STRICT_FLAG]
    options = {**DEFAULTS, **parse_cmd_args(argv)}  # parse_cmd_args rejects anything but --key=value
    config_files = options.get("config_files", "").split() or None
    rest = [arg for arg in argv if arg[2:].partition("=")[0] not in OWN_OPTIONS]
    return options["model"], options["dataset"], config_files, rest, strict, options.get("resume")


def main(argv=None):
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__.strip())
        return 0
    try:
        model, dataset, config_files, cmd_args, strict, resume = parse_args(argv)
        from recbole_mamba.quick_start import run

        result = run(model=model, dataset=dataset, config_file_list=config_files, cmd_args=cmd_args, strict=strict,
                     resume=resume)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001  (a bug: show everything)
        traceback.print_exc()
        print("error: internal error (a bug, not your input): please report it with the traceback above",
              file=sys.stderr)
        return 1
    metrics = ", ".join(f"{name}={value:.4f}" for name, value in result["test_result"].items())
    label = f"{dataset}, SYNTHETIC data" if result["synthetic_data"] else dataset
    print(f"test result ({model} on {label}): {metrics}")
    return 0
