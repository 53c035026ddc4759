"""Choosing between the fused CUDA kernels (mamba-ssm, causal-conv1d) and the pure-PyTorch implementations.

:func:`check_backend` validates a ``mamba_backend`` value; :func:`resolve_kernels` turns a backend and a device into
the functions to call, :func:`resolve_state_update` into the one-step SSM update of recurrent inference. The CUDA packages cannot even be imported without their compiled extensions, so they are
imported lazily, only for a CUDA device, and the outcome is cached.
"""

import dataclasses
import functools
import importlib
import logging
from collections.abc import Callable

import torch

from recbole_mamba.errors import InputError, check_choice

BACKENDS = ("auto", "torch", "cuda")
_SCAN_MODULE = "mamba_ssm.ops.selective_scan_interface"
_CUDA_KERNELS = {  # Kernels field: (module, function, package)
    "scan": (_SCAN_MODULE, "selective_scan_fn", "mamba-ssm"),
    "conv": ("causal_conv1d", "causal_conv1d_fn", "causal-conv1d"),
    "inner": (_SCAN_MODULE, "mamba_inner_fn", "mamba-ssm"),
}
_STATE_UPDATE_KERNEL = ("mamba_ssm.ops.triton.selective_state_update", "selective_state_update")
_FIX = "set mamba_backend=auto or mamba_backend=torch"
_logger = logging.getLogger(__name__)


def check_backend(backend):
    """Return ``backend``; an :class:`~recbole_mamba.errors.InputError` if it is not one of ``BACKENDS`` or is
    ``cuda`` without a GPU."""
    check_choice("mamba_backend", backend, BACKENDS)
    if backend == "cuda" and not torch.cuda.is_available():
        raise InputError("mamba_backend", "'cuda' needs a CUDA GPU (none is available here)", _FIX)
    return backend


@dataclasses.dataclass(frozen=True)
class Kernels:
    """The CUDA functions a backend resolved to on one device; None means the PyTorch implementation.

    ``scan``: mamba-ssm's ``selective_scan_fn``; ``conv``: causal-conv1d's ``causal_conv1d_fn``; ``inner``:
    mamba-ssm's fused ``mamba_inner_fn`` (conv + scan + projections), set only when both others are.
    """

    scan: Callable | None = None
    conv: Callable | None = None
    inner: Callable | None = None

    def describe(self):
        """Which implementations these are, in words (for a log line)."""
        if self.inner is not None:
            return "cuda (mamba-ssm fused mamba_inner_fn)"
        scan = "cuda (mamba-ssm selective_scan_fn" if self.scan is not None else "torch (chunked PyTorch scan"
        return f"{scan}; causal conv1d: {'causal-conv1d' if self.conv is not None else 'PyTorch'})"


@functools.cache
def _load_cuda_function(module_name, function_name):
    """Return ``module_name.function_name`` or None when the package (or its compiled extension) is missing."""
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, OSError, AttributeError) as error:  # OSError: extension built for another torch/CUDA
        _logger.debug("%s.%s unavailable: %s", module_name, function_name, error)
        return None


def _takes_cuda_kernels(backend, device):
    """Whether ``backend`` looks for CUDA kernels on ``device``; ``cuda`` off a GPU is an InputError."""
    if check_backend(backend) == "torch":
        return False
    device = torch.device(device)
    if device.type != "cuda" and backend == "cuda":
        raise InputError("mamba_backend", f"'cuda' needs the model and its inputs on a CUDA GPU (they are on "
                         f"{device})", f"move the model to the GPU or {_FIX}")
    return device.type == "cuda"


def resolve_state_update(backend, device):
    """mamba-ssm's Triton ``selective_state_update`` where ``backend`` takes CUDA kernels on ``device`` and it
    imports; None (the PyTorch step) otherwise, for ``cuda`` too: a step is small, and exact in PyTorch.

    Kept out of :class:`Kernels`, whose fields are the kernels of the full-sequence forward.
    """
    return _load_cuda_function(*_STATE_UPDATE_KERNEL) if _takes_cuda_kernels(backend, device) else None


def resolve_kernels(backend, device, required="scan"):
    """The :class:`Kernels` that ``backend`` gives on ``device`` (a ``torch.device`` or its name).

    "torch": the PyTorch implementations; "auto": each CUDA kernel whose package imports, on a CUDA device; "cuda":
    the same, but a one-line error naming the fix when the ``required`` kernel ("scan" or "conv") cannot run.
    """
    if not _takes_cuda_kernels(backend, device):
        return Kernels()
    found = {name: _load_cuda_function(module, function) for name, (module, function, _) in _CUDA_KERNELS.items()}
    if backend == "cuda" and found[required] is None:
        raise InputError("mamba_backend", f"'cuda' needs the {_CUDA_KERNELS[required][2]} package with its "
                         "compiled CUDA extension", f"build it from source as the README's Install notes show, or {_FIX}")
    if found["scan"] is None or found["conv"] is None:
        found["inner"] = None
    return Kernels(**found)
