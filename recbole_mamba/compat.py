"""Compatibility fixes that let unmodified RecBole 1.2.1 run on today's numpy, pandas and torch.

Every fix is applied once, by :func:`apply`, which the entry points that use RecBole call (``recbole_mamba.quick_start``,
``recbole_mamba.data``, the recommenders of ``recbole_mamba.model``, the command lines); each is covered by a test.
RecBole's source is never edited: fixes are narrow, module-scoped replacements. RecBole's ``torch.load`` calls are
left alone: the plugin's trainer writes plain-data checkpoints that load with ``weights_only=True``.
"""

import functools
import importlib
import os
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


def _exhaustive_search_with_generator():
    """RecBole's ``exhaustive_search`` draws from ``np.random.RandomState(seed)``; hyperopt >= 0.2.7 samples with
    ``rng.integers`` (a ``numpy.random.Generator`` method): give that module ``default_rng`` under the old name."""
    from recbole.trainer import hyper_tuning

    hyper_tuning.np = ModuleView(np, random=ModuleView(np.random, RandomState=np.random.default_rng))


def _init_device_any_backend(original):
    """Wrap ``Config._init_device``: with ``local_rank`` set (one process of several), join the process group with
    ``dist_backend`` (~: nccl on GPUs, gloo on CPUs) on that rank's device, where RecBole hard-codes nccl and CUDA."""
    import torch.distributed as dist

    from recbole_mamba.errors import InputError

    def _init_device(self):
        final = self.final_config_dict
        local_rank = final.pop("local_rank", None)
        original(self)  # gpu_id, CUDA_VISIBLE_DEVICES and the one-process device
        if local_rank is None:
            return
        device = final["device"]
        if device.type == "cuda":
            if final["nproc"] > len(final["gpu_id"].split(",")):
                raise InputError("nproc", f"{final['nproc']} processes but gpu_id lists {final['gpu_id']!r}",
                                 "give one GPU per process in gpu_id (e.g. --gpu_id='0,1')")
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        backend = final.get("dist_backend") or ("nccl" if device.type == "cuda" else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=local_rank + final["offset"],
                                    world_size=final["world_size"], init_method=f"tcp://{final['ip']}:{final['port']}")
        final.update(local_rank=local_rank, device=device, single_spec=False)
        if local_rank != 0:  # as RecBole: only each machine's first process logs and shows progress
            final.update(state="error", show_progress=False, verbose=False)

    return _init_device


def _distributed_data_parallel_any_device():
    """RecBole's trainer wraps the model in ``DistributedDataParallel(model, device_ids=[local_rank])``, which a CPU
    module refuses: pass ``device_ids`` for CUDA modules only."""
    from recbole.trainer import trainer as trainer_module
    from torch.nn.parallel import DistributedDataParallel

    def distributed_data_parallel(module, device_ids=None, **kwargs):
        on_cuda = any(parameter.is_cuda for parameter in module.parameters())
        return DistributedDataParallel(module, device_ids=device_ids if on_cuda else None, **kwargs)

    trainer_module.DistributedDataParallel = distributed_data_parallel


# RecBole modules that create folders with ``ensure_dir`` (bound by name at import).
ENSURE_DIR_MODULES = ("recbole.utils.logger", "recbole.trainer.trainer", "recbole.data.utils",
                      "recbole.data.dataset.dataset")


def ensure_dir(dir_path):
    """RecBole's ``ensure_dir`` without its check-then-create race: processes started together (``--nproc``)
    creating the same ``log/<model>`` or checkpoint folder made all but the first fail with FileExistsError."""
    os.makedirs(dir_path, exist_ok=True)


def apply():
    """Apply every fix once; later calls do nothing."""
    global _applied
    if _applied:
        return
    # numpy 2 removed these; RecBole's Config.compatibility_settings reads them to re-create np.float & co.
    for name, alias in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, alias)
    # scipy >= 1.13 removed dok_matrix._update: LightGCN, NGCF & co. failed with AttributeError building their graph.
    _restore_dok_matrix_update()
    # hyperopt >= 0.2.7 samples with Generator.integers: RecBole's exhaustive search failed with AttributeError.
    _exhaustive_search_with_generator()
    # Multi-process training: RecBole hard-codes nccl and CUDA devices (no CPU processes, no backend choice).
    from recbole.config import configurator

    configurator.Config._init_device = _init_device_any_backend(configurator.Config._init_device)
    _distributed_data_parallel_any_device()
    for name in ENSURE_DIR_MODULES:
        importlib.import_module(name).ensure_dir = ensure_dir
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
