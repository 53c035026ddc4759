"""The record of a search: one :class:`TrialRecord` per trial, the best trial, a table, the results file."""

import dataclasses

from recbole_mamba.bench.results import write_text

DONE = "done"


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial: its parameter values and outcome. ``status`` is ``done``, ``stopped at epoch N`` (by the
    scheduler) or ``failed: <error>``; ``valid_score`` is the best validation score seen (None if none)."""

    params: dict
    status: str
    valid_score: float | None = None
    valid_result: dict = dataclasses.field(default_factory=dict)
    test_result: dict = dataclasses.field(default_factory=dict)


def failed(params, error):
    """The record of a trial that raised ``error``."""
    message = str(error).strip().splitlines()
    return TrialRecord(params, f"failed: {type(error).__name__}: {message[-1] if message else ''}".rstrip(": "))


def completed(params, valid_score, valid_result, test_result):
    """The record of a trial that ran to its end (metric values as plain floats)."""
    return TrialRecord(params, DONE, float(valid_score), _floats(valid_result), _floats(test_result))


def _floats(metrics):
    return {name: float(value) for name, value in metrics.items()}


def best_trial(records, bigger):
    """The index of the completed trial with the best validation score (``bigger`` is better), or None."""
    done = [index for index, record in enumerate(records) if record.status == DONE]
    if not done:
        return None
    sign = 1 if bigger else -1
    return max(done, key=lambda index: sign * records[index].valid_score)


def _number(value):
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def table(records, metric, metrics):
    """A markdown table of ``records``: parameters, status, then validation and test ``metrics`` (a trial stopped
    early has only its validation score, ``metric``)."""
    names = list(dict.fromkeys(name for record in records for name in record.params))
    header = ["trial", *names, "status", *[f"valid {m}" for m in metrics], *[f"test {m}" for m in metrics]]
    rows = []
    for number, record in enumerate(records, 1):
        valid = {metric: record.valid_score, **record.valid_result}
        rows.append([str(number), *[str(record.params.get(name, "")) for name in names], record.status,
                     *[_number(valid.get(m)) for m in metrics], *[_number(record.test_result.get(m)) for m in metrics]])
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, ["---"] * len(header), *rows])


def summary(records, metric, bigger, metrics=None):
    """The best trial (parameters, validation and test results) and the table of every trial.

    ``metric`` is the validation metric that ranks trials; the table shows ``metrics`` (default: ``metric`` only).
    """
    best = best_trial(records, bigger)
    if best is None:
        head = "best trial: none (no trial completed)"
    else:
        record = records[best]
        head = (f"best trial: {best + 1} of {len(records)}, {metric} = {record.valid_score:.4f} "
                f"({'higher' if bigger else 'lower'} is better)\n"
                f"best parameters: {record.params}\n"
                f"valid result: {record.valid_result}\n"
                f"test result: {record.test_result}")
    return f"{head}\n\n{table(records, metric, metrics or [metric])}\n"


def write_results(path, records, metric, bigger):
    """Write the :func:`summary` of ``records`` with every metric to ``path``, atomically."""
    metrics = list(dict.fromkeys(name for record in records for name in record.valid_result)) or [metric]
    if metric in metrics:
        metrics.insert(0, metrics.pop(metrics.index(metric)))
    write_text(path, summary(records, metric, bigger, metrics))
