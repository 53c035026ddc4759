"""What a search varies and what it keeps: :class:`Study`, checked before any trial runs."""

import dataclasses

from recbole_mamba.errors import InputError
from recbole_mamba.quick_start.checks import check_input
from recbole_mamba.quick_start.config import Config
from recbole_mamba.quick_start.option_checks import _unknown, known_options


@dataclasses.dataclass(frozen=True)
class Study:
    """A search: ``params`` (from a params file) vary; the model, dataset, config files and ``fixed`` options
    (``--key=value`` strings, converted as RecBole converts the command line) are those of every trial."""

    model: str
    dataset: str
    config_files: tuple
    fixed: dict
    params: tuple
    strict: bool = False

    def values(self, sample):
        """A trial's parameter values, from a sample of the search space (``{name: value}``)."""
        return {param.name: param.value(sample[param.name]) for param in self.params}

    def config_dict(self, values):
        """The ``config_dict`` of :func:`~recbole_mamba.quick_start.objective_function` for a trial's ``values``."""
        return {"model": self.model, "dataset": self.dataset, **self.fixed, **values}

    def config(self, values=None):
        return Config(config_file_list=list(self.config_files) or None, config_dict=self.config_dict(values or {}),
                      strict=self.strict)

    def check(self):
        """Check the options, the dataset and every value a parameter may take (each choice, both ends of a
        range), one at a time; return the trials' common configuration. Bad input raises :class:`InputError`."""
        base = self.config()
        check_input(base)
        known = known_options(base)
        for param in self.params:
            if param.name in self.fixed:
                raise InputError(param.where, f"{param.name} is searched and also fixed (--{param.name})",
                                 "drop one of them")
            if param.name not in known:
                _unknown(param.where, param.name, known, strict=True)
            for value in param.extremes():
                try:
                    self.config({param.name: value})
                except InputError as error:
                    raise InputError(param.where, f"{param.name} = {value!r}: {error.problem}", error.fix) from None
        return base
