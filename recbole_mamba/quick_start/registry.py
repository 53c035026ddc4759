"""Model and trainer lookup by name: recbole-mamba's own models first, then RecBole's built-in ones.

``recbole.utils.get_model`` is avoided on purpose: for a name it does not know it probes
``recbole.model.exlib_recommender``, which imports lightgbm/xgboost and dies with ``ModuleNotFoundError``.
"""

import difflib
import importlib
import importlib.util
import inspect

PLUGIN_MODEL_PACKAGE = "recbole_mamba.model"
PLUGIN_TRAINER_MODULE = "recbole_mamba.trainer"
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
    """Models exported by :mod:`recbole_mamba.model` (imported lazily), by class name."""
    return _recommender_classes(importlib.import_module(PLUGIN_MODEL_PACKAGE))


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
    hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
    ours = ", ".join(plugin_names) or "none yet"
    return ValueError(
        f"unknown model '{name}': not a recbole-mamba model ({ours}) nor a RecBole model; check --model{hint}"
    )


def get_model(name):
    """The model class called ``name``: a recbole-mamba model if one has that name, else RecBole's.

    Raises ``ValueError`` with a one-line message (and close matches) for an unknown name.
    """
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {type(name).__name__}")
    ours = plugin_models()
    if name in ours:
        return ours[name]
    if name in RECBOLE_EXLIB_MODELS:
        library = RECBOLE_EXLIB_MODELS[name]
        try:
            module = importlib.import_module("recbole.model.exlib_recommender")
        except ImportError:
            raise ValueError(f"model '{name}' needs the optional package {library}: pip install {library}") from None
        return getattr(module, name)
    for package in RECBOLE_MODEL_PACKAGES:
        model_class = getattr(importlib.import_module(package), name, None)
        if inspect.isclass(model_class):
            return model_class
    raise _unknown_model_error(name)


def get_trainer(model_type, model_name):
    """The trainer class for a model: ``<model_name>Trainer`` from ``recbole_mamba.trainer`` if that exists,
    else RecBole's choice (``recbole.utils.get_trainer``)."""
    if importlib.util.find_spec(PLUGIN_TRAINER_MODULE) is not None:
        trainer = getattr(importlib.import_module(PLUGIN_TRAINER_MODULE), f"{model_name}Trainer", None)
        if trainer is not None:
            return trainer
    from recbole.utils import get_trainer as recbole_get_trainer

    return recbole_get_trainer(model_type, model_name)
