"""Model lookup by name: recbole-mamba's own models first, then RecBole's built-in ones.

``recbole.utils.get_model`` is avoided on purpose: for a name it does not know it probes
``recbole.model.exlib_recommender``, which imports lightgbm/xgboost and dies with ``ModuleNotFoundError``.
"""

import difflib
import importlib
import inspect

from recbole_mamba.errors import InputError

PLUGIN_MODEL_PACKAGE = "recbole_mamba.model"
RECBOLE_MODEL_PACKAGES = (
    "recbole.model.general_recommender",
    "recbole.model.context_aware_recommender",
    "recbole.model.sequential_recommender",
    "recbole.model.knowledge_aware_recommender",
)
# RecBole's wrappers around optional third-party libraries: importing them needs that library.
RECBOLE_EXLIB_MODELS = {"LightGBM": "lightgbm", "XGBoost": "xgboost"}


def _recommender_classes(module):
    """Concrete recommender classes a module exports, by name."""
    from recbole.model.abstract_recommender import AbstractRecommender

    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, AbstractRecommender) and not inspect.isabstract(obj)
        and obj.__module__.startswith(module.__name__)
    }


def plugin_models():
    """Recommenders exported by :mod:`recbole_mamba.model` (its ``__all__``), by class name."""
    from recbole.model.abstract_recommender import AbstractRecommender

    package = importlib.import_module(PLUGIN_MODEL_PACKAGE)
    exported = {name: getattr(package, name) for name in package.__all__}
    return {name: obj for name, obj in exported.items() if issubclass(obj, AbstractRecommender)}


def recbole_models():
    """RecBole's built-in models (those without optional dependencies), by class name."""
    models = {}
    for package in RECBOLE_MODEL_PACKAGES:
        models.update(_recommender_classes(importlib.import_module(package)))
    return models


def _unknown_model_error(name):
    plugin_names = sorted(plugin_models())
    known = plugin_names + sorted(recbole_models()) + sorted(RECBOLE_EXLIB_MODELS)
    by_lower = {candidate.lower(): candidate for candidate in known}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(by_lower[c] for c in close)}?" if close else "check the spelling"
    ours = ", ".join(plugin_names) or "none yet"
    return InputError("model", f"unknown model '{name}', neither a recbole-mamba model ({ours}) nor a RecBole model",
                      hint)


def get_model(name):
    """The model class called ``name``: a recbole-mamba model if one has that name, else RecBole's.

    Raises :class:`~recbole_mamba.errors.InputError` (with close matches) for an unknown name.
    """
    if not isinstance(name, str):
        raise InputError("model", f"a model name must be a string, not {type(name).__name__}", "pass e.g. 'RecMamba'")
    ours = plugin_models()
    if name in ours:
        return ours[name]
    if name in RECBOLE_EXLIB_MODELS:
        library = RECBOLE_EXLIB_MODELS[name]
        try:
            module = importlib.import_module("recbole.model.exlib_recommender")
        except ImportError:
            raise InputError("model", f"{name} needs the optional package {library}", f"pip install {library}") from None
        return getattr(module, name)
    for package in RECBOLE_MODEL_PACKAGES:
        model_class = getattr(importlib.import_module(package), name, None)
        if inspect.isclass(model_class):
            return model_class
    raise _unknown_model_error(name)
