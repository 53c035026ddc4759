"""Checks of a dataset's interaction atomic file before anything is loaded or written.

RecBole reports a malformed ``.inter`` file with a traceback from deep inside pandas or its filters, or not at all
(a split left empty fails after training). :func:`check_inter_files` finds the first problem and raises an
:class:`~recbole_mamba.errors.InputError` naming the file and line: the header (``name:type`` fields of RecBole's
types), the fields the model and the split need, the number of fields of every row, numbers in ``float`` fields,
non-empty ids, and enough interactions per user for a leave-one-out split.
"""

from pathlib import Path

import pandas as pd

from recbole_mamba.data.sequence_windows import HELD_OUT_PHASES
from recbole_mamba.errors import InputError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
HEADER_EXAMPLE = "user_id:token<TAB>item_id:token<TAB>timestamp:float"


def _header(path, separator, encoding):
    with open(path, encoding=encoding, newline="") as file:
        line = file.readline().rstrip("\r\n")
    if not line.strip():
        raise InputError(path, "empty file: no header line", f"start it with a header like {HEADER_EXAMPLE}")
    fields = {}
    for column in line.split(separator):
        name, _, field_type = column.partition(":")
        if not name or field_type not in FIELD_TYPES:
            raise InputError(f"{path}:1", f"header field {column!r} is not name:type",
                             f"write each field as name:type with a type among {', '.join(FIELD_TYPES)}, e.g. "
                             f"{HEADER_EXAMPLE}")
        if name in fields:
            raise InputError(f"{path}:1", f"field {name} appears twice in the header", "keep one")
        fields[name] = field_type
    return fields


def _check_row_shapes(path, separator, encoding, n_fields):
    """Raise for the first row without ``n_fields`` fields; returns the line numbers of blank lines (skipped, as
    pandas and RecBole skip them)."""
    rows, blank = 0, []
    with open(path, encoding=encoding, newline="") as file:
        file.readline()
        for number, line in enumerate(file, start=2):
            if not line.strip("\r\n"):
                blank.append(number)
                continue
            found = line.count(separator) + 1
            if found != n_fields:
                raise InputError(f"{path}:{number}", f"{found} fields, the header has {n_fields}",
                                 f"give every row {n_fields} fields separated by {separator!r}")
            rows += 1
    if rows == 0:
        raise InputError(path, "no interactions: the file has a header only", "add one interaction per line")
    return blank


def _first_line(mask, blank):
    """The file line of the first True row of ``mask`` (row 0 follows the header; blank lines were skipped)."""
    line = int(mask.to_numpy().nonzero()[0][0]) + 2
    for number in blank:
        line += number <= line
    return line


def _required_fields(config):
    """field -> the option that names it, for the fields this run needs in the interaction file."""
    required = {config["USER_ID_FIELD"]: "USER_ID_FIELD", config["ITEM_ID_FIELD"]: "ITEM_ID_FIELD"}
    if config["eval_args"]["order"] == "TO" or config["MODEL_TYPE"].name == "SEQUENTIAL":
        required[config["TIME_FIELD"]] = "TIME_FIELD"
    return required


def check_inter_file(path, config, count_users=True):
    """Check one interaction file for the run ``config`` (see the module docstring)."""
    separator, encoding = config["field_separator"], config["encoding"] or "utf-8"
    fields = _header(path, separator, encoding)
    required = _required_fields(config)
    for field, option in required.items():
        if field not in fields:
            raise InputError(f"{path}:1", f"no {field} field in the header (needed as {option})",
                             f"add a {field} column, or set {option} to one of {', '.join(fields)}")
    load_col = (config["load_col"] or {}).get("inter")
    for field in load_col or []:
        if field not in fields:
            raise InputError("load_col", f"inter field {field} is not in {path}",
                             f"choose among {', '.join(fields)}")
    blank = _check_row_shapes(path, separator, encoding, len(fields))

    loaded = [name for name in fields if load_col is None or name in load_col]
    frame = pd.read_csv(path, sep=separator, usecols=[f"{name}:{fields[name]}" for name in loaded], dtype=str,
                        keep_default_na=False, encoding=encoding, engine="c", quoting=3)
    frame.columns = loaded
    for name in loaded:
        column = frame[name]
        if name in required and (column == "").any():
            raise InputError(f"{path}:{_first_line(column == '', blank)}", f"empty {name}",
                             f"give every row a {name}")
        if fields[name] == "float":
            bad = pd.to_numeric(column, errors="coerce").isna() & (column != "")
            if bad.any():
                value = column[bad].iloc[0]
                raise InputError(f"{path}:{_first_line(bad, blank)}", f"{name} value {value!r} is not a number",
                                 f"write {name} as a number (it is declared {name}:float)")
    split = config["eval_args"]["split"]
    if count_users and "LS" in split:
        needed = 1 + len(HELD_OUT_PHASES[split["LS"]])
        longest = int(frame[config["USER_ID_FIELD"]].value_counts().max())
        if longest < needed:
            raise InputError(path, f"no user has {needed} interactions, which the leave-one-out split "
                             f"{split['LS']} needs (the longest history has {longest})",
                             "add interactions, or hold out less (eval_args split {LS: test_only})")


def check_inter_files(config):
    """Check the interaction file(s) of ``config``'s dataset: ``<dataset>.inter`` or the benchmark files."""
    folder, dataset, parts = Path(config["data_path"]), config["dataset"], config["benchmark_filename"]
    if parts:
        for part in parts:
            check_inter_file(folder / f"{dataset}.{part}.inter", config, count_users=False)
    else:
        check_inter_file(folder / f"{dataset}.inter", config)
