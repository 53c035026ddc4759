"""Choosing between the fused CUDA kernels (mamba-ssm, causal-conv1d) and the pure-PyTorch implementations.

The CUDA packages cannot even be imported without their compiled extensions, so they are imported lazily, only
when a CUDA tensor asks for them, and the outcome is cached.
"""

import functools
import importlib
import logging

BACKENDS = ("auto", "torch", "cuda")
_logger = logging.getLogger(__name__)


@functools.cache
def load_cuda_function(module_name, function_name):
    """Return ``module_name.function_name`` or None when the package (or its compiled extension) is missing."""
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, OSError, AttributeError) as error:  # OSError: extension built for another torch/CUDA
        _logger.debug("%s.%s unavailable: %s", module_name, function_name, error)
        return None


def resolve_backend(backend, tensor, module_name, function_name, package):
    """Return the CUDA function to call, or None for the torch implementation.

    ``backend`` is "auto" (CUDA when ``tensor`` is on a GPU and ``package`` imports), "torch" or "cuda" (an error,
    naming the fix, when that is impossible).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown mamba_backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return None
    if not tensor.is_cuda:
        if backend == "cuda":
            raise RuntimeError(
                "mamba_backend='cuda' needs the model on a CUDA GPU (none is in use here); "
                "set mamba_backend=auto or mamba_backend=torch"
            )
        return None
    function = load_cuda_function(module_name, function_name)
    if function is None and backend == "cuda":
        raise RuntimeError(
            f"mamba_backend='cuda' needs the {package} package with its compiled CUDA extension "
            f"(build it from source as the README's Install notes show); set mamba_backend=auto or mamba_backend=torch"
        )
    return function
