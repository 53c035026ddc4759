"""RecBole's HyperTuning params files, one parameter per line: ``name type value``.

Types (RecBole's): ``choice [v1, v2, ...]`` (a Python list), ``uniform low,high``, ``quniform low,high,q`` and
``loguniform low,high`` (bounds of the natural logarithm, as in hyperopt). Blank lines are skipped. The same
:class:`Param` gives the hyperopt and the Ray Tune search space.
"""

import ast
import dataclasses
import math
from pathlib import Path

from recbole_mamba.errors import InputError

BOUNDS = {"uniform": ("low", "high"), "quniform": ("low", "high", "q"), "loguniform": ("low", "high")}
KINDS = ("choice", *BOUNDS)
EXAMPLE = "e.g. 'learning_rate choice [0.001, 0.003]' or 'dropout_prob uniform 0.1,0.5'"


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched option: ``kind`` (see the module docstring) and its choices or bounds; ``where`` is file:line."""

    name: str
    kind: str
    values: tuple
    where: str

    @property
    def discrete(self):
        """Whether the parameter takes finitely many values (what an exhaustive search can enumerate)."""
        return self.kind in ("choice", "quniform")

    def hyperopt(self):
        """The hyperopt expression (``hp.choice``, ``hp.uniform``, ...)."""
        from hyperopt import hp

        if self.kind == "choice":
            return hp.choice(self.name, list(self.values))
        return getattr(hp, self.kind)(self.name, *self.values)

    def ray(self):
        """The Ray Tune domain (``tune.choice``, ``tune.uniform``, ...; loguniform takes the values, not their logs)."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "loguniform":
            return tune.loguniform(*map(math.exp, self.values))
        return getattr(tune, self.kind)(*self.values)

    def value(self, sample):
        """A sampled value as the configuration takes it: quniform samples on an integer grid are ints."""
        if self.kind == "quniform" and float(self.values[0]).is_integer() and float(self.values[2]).is_integer():
            return int(round(sample))
        return sample

    def extremes(self):
        """Every choice, or both ends of the range: the values that bound what the parameter takes."""
        if self.kind == "choice":
            return list(self.values)
        low, high = self.values[:2]
        if self.kind == "loguniform":
            low, high = math.exp(low), math.exp(high)
        return [self.value(low), self.value(high)]


def _parse_line(line, where):
    name, kind, text = (line.split(maxsplit=2) + ["", ""])[:3]
    if kind not in KINDS or not text:
        raise InputError(where, f"{line.strip()!r} is not 'name type value' with a type of {', '.join(KINDS)}",
                         EXAMPLE)
    if kind == "choice":
        try:
            values = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values = None
        if not isinstance(values, list) or not values:
            raise InputError(where, f"the choices of {name}, {text}, are not a non-empty list",
                             "write a Python list, e.g. [64, 128] or ['mamba4rec', 'paper']")
        return Param(name, kind, tuple(values), where)
    names = BOUNDS[kind]
    try:
        values = tuple(float(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != len(names) or not values[0] < values[1] or (kind == "quniform" and values[2] <= 0):
        raise InputError(where, f"{kind} of {name}: {text!r} is not {','.join(names)}",
                         f"give {len(names)} numbers with low < high" + (" and q > 0" if kind == "quniform" else ""))
    return Param(name, kind, values, where)


def read_params(path):
    """The parameters of the params file ``path``; a bad file or line is an :class:`InputError` naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(str(path), f"cannot read the params file ({getattr(error, 'strerror', None) or error})",
                         f"give --params_file=PATH of a RecBole params file, one 'name type value' per line, {EXAMPLE}"
                         ) from None
    params, seen = [], {}
    for number, line in enumerate(lines, 1):
        if line.strip():
            param = _parse_line(line, f"{path}:{number}")
            if param.name in seen:
                raise InputError(param.where, f"{param.name} is already searched at {seen[param.name]}", "keep one")
            seen[param.name] = param.where
            params.append(param)
    if not params:
        raise InputError(str(path), "no parameters to search", f"write one 'name type value' per line, {EXAMPLE}")
    return tuple(params)
