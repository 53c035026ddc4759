"""Hyper-parameter search for recbole-mamba's and RecBole's models, with RecBole's ``run_hyper.py`` flags.

    python run_hyper.py --model=RecMamba --dataset=ml-100k --tool=hyperopt --algo=random --max_evals=20 --epochs=10
    python run_hyper.py --model=SASRec --dataset=ml-100k --tool=ray --scheduler=asha --num_samples=16
    (also the console script recbole-mamba-hyper, same flags; --help lists them)

The search space is a RecBole params file (one ``name type value`` per line, see
:mod:`recbole_mamba.quick_start.tuning.params`); by default the model's own under ``properties/hyper/``. Any other
``--key=value`` is fixed for every trial, as in ``run.py``. Every trial's parameters, validation and test metrics
and the best parameters are printed and written (atomically) to ``--output_file``. Bad input ends with one line on
stderr, ``error: <where>: <problem>; <fix>``, and exit status 2, before any trial runs; the exit status is 1 when
no trial completed.
"""

import argparse
import os
import sys
import time

from recbole_mamba.errors import InputError
from recbole_mamba.locations import properties_dir
from recbole_mamba.quick_start.cli import DEFAULTS
from recbole_mamba.quick_start.config import parse_cmd_args
from recbole_mamba.quick_start.pipeline import LOG_ROOT
from recbole_mamba.quick_start.registry import get_model
from recbole_mamba.quick_start.tuning import hyperopt_search, ray_search, trials
from recbole_mamba.quick_start.tuning.params import read_params
from recbole_mamba.quick_start.tuning.study import Study

# The flags of one tool, with their defaults (None where the default depends on the run, see --help).
TOOL_FLAGS = {
    "hyperopt": {"algo": "exhaustive", "max_evals": 100},
    "ray": {"scheduler": "asha", "num_samples": 10, "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "address": None,
            "storage_path": None},
}
HYPER_DIR = "hyper"  # the shipped search spaces: properties/hyper/<Model>.hyper


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError("command line", message, f"see {self.prog} --help")


def _number(convert, lowest, inclusive):
    def parse(text):
        value = convert(text)  # a ValueError becomes argparse's "invalid value" message
        if value < lowest or (value == lowest and not inclusive):
            raise ValueError(text)
        return value

    parse.__name__ = f"{'non-negative' if inclusive else 'positive'} {convert.__name__}"
    return parse


def _parser():
    def default(tool, flag):
        return f"(default: {TOOL_FLAGS[tool][flag]})"

    parser = _Parser(prog="run_hyper.py", allow_abbrev=False,
                     description="Hyper-parameter search; any other --key=value is fixed for every trial.")
    parser.add_argument("--model", default=DEFAULTS["model"],
                        help="recbole-mamba or RecBole model (default: %(default)s)")
    parser.add_argument("--dataset", default=DEFAULTS["dataset"], help="dataset name (default: %(default)s)")
    parser.add_argument("--config_files", default="", help='yaml files, later ones win: "a.yaml b.yaml"')
    parser.add_argument("--params_file", help=f"RecBole params file (default: properties/{HYPER_DIR}/<model>.hyper)")
    parser.add_argument("--output_file", help="results file (default: log/hyper-<model>-<dataset>-<time>.result)")
    parser.add_argument("--tool", choices=tuple(TOOL_FLAGS), default="hyperopt", help="(default: %(default)s)")
    parser.add_argument("--strict", action="store_true", help="unknown options are errors")
    hyperopt = parser.add_argument_group("--tool=hyperopt")
    hyperopt.add_argument("--algo", choices=hyperopt_search.ALGOS,
                          help=f"exhaustive, random or bayes (TPE) {default('hyperopt', 'algo')}")
    hyperopt.add_argument("--max_evals", type=_number(int, 0, False), help=f"trials {default('hyperopt', 'max_evals')}")
    ray = parser.add_argument_group("--tool=ray")
    ray.add_argument("--scheduler", choices=ray_search.SCHEDULERS, help=f"early stopping {default('ray', 'scheduler')}")
    ray.add_argument("--num_samples", type=_number(int, 0, False), help=f"trials {default('ray', 'num_samples')}")
    ray.add_argument("--cpus_per_trial", type=_number(float, 0, False), help=default("ray", "cpus_per_trial"))
    ray.add_argument("--gpus_per_trial", type=_number(float, 0, True), help=default("ray", "gpus_per_trial"))
    ray.add_argument("--address", help="HOST:PORT of a running Ray cluster (default: start one here)")
    ray.add_argument("--storage_path", help="trial results and checkpoints (default: <checkpoint_dir>/ray_results)")
    return parser


def parse_args(argv):
    """The tuning flags (an ``argparse.Namespace``, tool defaults filled in) and the fixed ``--key=value`` options."""
    args, rest = _parser().parse_known_args(argv)
    fixed = parse_cmd_args(rest)  # rejects anything but --key=value
    for tool, flags in TOOL_FLAGS.items():
        for flag, value in flags.items():
            if tool != args.tool and getattr(args, flag) is not None:
                raise InputError(f"--{flag}", f"applies to --tool={tool}, not --tool={args.tool}",
                                 f"drop it, or use --tool={tool}")
            if tool == args.tool and getattr(args, flag) is None:
                setattr(args, flag, value)
    return args, fixed


def default_params_file(model):
    """The shipped search space of ``model`` (or of the nearest RecBole model it extends)."""
    for cls in get_model(model).__mro__:
        path = properties_dir() / HYPER_DIR / f"{cls.__name__}.hyper"
        if path.is_file():
            return path
    raise InputError("--params_file", f"no search space is shipped for {model}",
                     "give --params_file=PATH, a RecBole params file (one 'name type value' per line)")


def _study(args, fixed):
    params = read_params(args.params_file or default_params_file(args.model))
    if args.tool == "hyperopt" and args.algo == "exhaustive":
        continuous = [param.name for param in params if not param.discrete]
        if continuous:
            raise InputError("--algo", f"exhaustive search needs discrete parameters (choice, quniform), not "
                             f"{', '.join(continuous)}", "use --algo=random or --algo=bayes, or choices")
    return Study(args.model, args.dataset, tuple(args.config_files.split()), fixed, params, args.strict)


def main(argv=None):
    """Run the search of the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, fixed = parse_args(argv)
        study = _study(args, fixed)
        base = study.check()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in base.option_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    metric, bigger = base["valid_metric"].lower(), base["valid_metric_bigger"]
    output = args.output_file or str(
        LOG_ROOT / f"hyper-{args.model}-{args.dataset}-{time.strftime('%Y-%m-%d_%H-%M-%S')}.result")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)

    if args.tool == "hyperopt":
        def on_trial(records):
            record = records[-1]
            scores = f", valid {metric} = {record.valid_score:.4f}" if record.valid_score is not None else ""
            print(f"trial {len(records)} (of at most {args.max_evals}): {record.params}: {record.status}{scores}",
                  flush=True)
            trials.write_results(output, records, metric, bigger)

        records = hyperopt_search.search(study, args.algo, args.max_evals, base["seed"], bigger, on_trial)
    else:
        storage_path = args.storage_path or os.path.join(base["checkpoint_dir"], "ray_results")
        records, experiment = ray_search.search(
            study, metric, bigger, base["epochs"], base["seed"], scheduler=args.scheduler,
            num_samples=args.num_samples, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
            address=args.address, storage_path=storage_path)
        print(f"Ray Tune experiment (every trial's reports, checkpoints of completed trials): {experiment}")
        trials.write_results(output, records, metric, bigger)
    print(trials.summary(records, metric, bigger))
    print(f"results of all {len(records)} trials written to {output}")
    return 0 if trials.best_trial(records, bigger) is not None else 1
