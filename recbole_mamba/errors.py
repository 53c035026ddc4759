"""Errors in the user's input: one line, ``<file or key>: <problem>; <fix>``, shown without a traceback.

Everything that rejects input (options, atomic files, checkpoints, the command line) raises :class:`InputError`;
any other exception is a bug and keeps its traceback. This module imports nothing heavy, so every layer may use it.
"""


class InputError(ValueError):
    """Bad input, reported as ``<where>: <problem>; <fix>`` (exit status 2 on the command line)."""

    def __init__(self, where, problem, fix):
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(" ".join(f"{where}: {problem}; {fix}".split()))


def check_choice(key, value, choices):
    """``value`` if it is one of ``choices``, else an :class:`InputError` naming ``key`` and the choices."""
    if value not in choices:
        raise InputError(key, f"unknown value {value!r}", f"choose one of {', '.join(map(str, choices))}")
    return value
