"""Compatibility fixes that let unmodified RecBole 1.2.1 run on today's numpy, pandas and torch.

Every fix is applied once, by :func:`apply` (called on import of :mod:`recbole_mamba`), and each is covered by
``tests/test_compat.py``. RecBole's source is never edited: fixes are narrow, module-scoped replacements.
"""

import functools
import importlib
import sys
import types
import warnings

import numpy as np
import torch

SEQUENCE_TYPES = ("token_seq", "float_seq")
_applied = False


class ModuleView(types.ModuleType):
    """A module as seen by one RecBole module: ``overrides`` shadow attributes, everything else delegates."""

    def __init__(self, module, **overrides):
        super().__init__(module.__name__)
        self._module = module
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._module, name)


def trusted_torch_load(*args, **kwargs):
    """``torch.load`` defaulting to ``weights_only=False``, for RecBole's own checkpoints (they pickle Config)."""
    kwargs.setdefault("weights_only", False)
    return torch.load(*args, **kwargs)


def read_csv_with_empty_sequences(*args, **kwargs):
    """``pd.read_csv`` that turns empty token_seq/float_seq cells into "" (RecBole's in-place fillna no longer does)."""
    import pandas as pd

    frame = pd.read_csv(*args, **kwargs)
    for column in frame.columns:
        if str(column).rsplit(":", 1)[-1] in SEQUENCE_TYPES:
            frame[column] = frame[column].fillna("")
    return frame


def _fill_nan_by_assignment(original_fill_nan):
    """Wrap ``Dataset._fill_nan`` so token/float NaNs are filled by assignment, then run RecBole's own pass."""
    from recbole.utils import FeatureType

    def _fill_nan(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                if self.field2type[field] == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif self.field2type[field] == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
        original_fill_nan(self)

    return _fill_nan


def _without_chained_assignment_warnings(method):
    """Run ``method`` with pandas' ChainedAssignmentError warnings silenced (see :func:`apply`)."""
    import pandas as pd

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ChainedAssignmentError)
            return method(*args, **kwargs)

    return wrapper


def _elementwise_len_agg_for_recbole(original_agg):
    """Wrap ``pd.Series.agg`` so ``agg(len)`` called from RecBole's code gives per-element lengths (pandas < 3)."""

    def agg(self, func=None, *args, **kwargs):
        if func is len and sys._getframe(1).f_globals.get("__name__", "").startswith("recbole."):
            return self.map(len)
        return original_agg(self, func, *args, **kwargs)

    agg.__wrapped__ = original_agg
    return agg


def _view_torch_load(module_name):
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # recbole.quick_start imports ray; without ray its load_data_and_model is unreachable
        return
    module.torch = ModuleView(torch, load=trusted_torch_load)


def _restore_dok_matrix_update():
    """Give scipy's ``dok_matrix`` back the ``_update`` that RecBole's graph models call; SciPy 1.13 removed it.

    RecBole builds the adjacency matrix of LightGCN, NGCF, NCL, GCMC, SpectralCF, KGIN and MCCLK with
    ``A._update({(row, col): 1, ...})``, a bulk insert of in-range keys. The replacement does it with one fancy-indexed
    assignment (public API; ``dok_matrix.update`` only works from SciPy 1.17). Older SciPy keeps its own ``_update``.
    """
    from scipy.sparse import dok_matrix

    def _update(self, data):
        if data:
            rows, cols = np.array(list(data), dtype=np.intp).T
            self[rows, cols] = np.fromiter(data.values(), dtype=self.dtype, count=len(data))

    if not hasattr(dok_matrix, "_update"):
        dok_matrix._update = _update


def apply():
    """Apply every fix once; later calls do nothing."""
    global _applied
    if _applied:
        return
    # numpy 2 removed these; RecBole's Config.compatibility_settings reads them to re-create np.float & co.
    for name, alias in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, alias)
    # torch >= 2.6 defaults to weights_only=True: best-model reload and load_data_and_model fail on RecBole's checkpoint.
    _view_torch_load("recbole.trainer.trainer")
    _view_torch_load("recbole.quick_start.quick_start")
    # scipy >= 1.13 removed dok_matrix._update: LightGCN, NGCF & co. failed with AttributeError building their graph.
    _restore_dok_matrix_update()
    # pandas 3 copy-on-write makes RecBole's df[f].fillna(..., inplace=True) a silent no-op.
    import pandas as pd
    from recbole.data.dataset import dataset as dataset_module

    dataset_module.pd = ModuleView(pd, read_csv=read_csv_with_empty_sequences)
    dataset_module.Dataset._fill_nan = _fill_nan_by_assignment(dataset_module.Dataset._fill_nan)
    # RecBole's SINE module turns on autograd anomaly detection for the whole process when imported (which
    # importing any RecBole sequential model does): every backward pass gets slower. Import it, then switch it off.
    importlib.import_module("recbole.model.sequential_recommender.sine")
    torch.autograd.set_detect_anomaly(False)
    # Those in-place fills, now redundant no-ops, make pandas 3 print a ChainedAssignmentError warning on every load.
    for name in ("_load_feat", "_fill_nan"):
        method = getattr(dataset_module.Dataset, name)
        setattr(dataset_module.Dataset, name, _without_chained_assignment_warnings(method))
    # pandas 3 Series.agg(len) returns the Series' length, not each cell's: every token_seq/float_seq field broke.
    pd.Series.agg = _elementwise_len_agg_for_recbole(pd.Series.agg)
    _applied = True
