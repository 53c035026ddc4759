"""recbole-mamba's models: every recommender class exported here is found by name (``--model=RecMamba``).

The classes are imported on first access, after the RecBole compatibility fixes are applied, so that
``recbole_mamba.model.mamba_mixer`` can be imported without RecBole.
"""

import importlib

_MODULES = {
    "GRU4RecAllPositions": "gru4rec_all_positions",
    "MambaMixer": "mamba_mixer",
    "RecMamba": "recmamba",
    "SASRecSDPA": "sasrec_sdpa",
}
__all__ = sorted(_MODULES)


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name != "MambaMixer":
        from recbole_mamba import compat

        compat.apply()
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
