"""Mamba's kernels with backends: mamba-ssm / causal-conv1d CUDA kernels when present, exact PyTorch otherwise."""

from recbole_mamba.ops.backends import BACKENDS, resolve_backend
from recbole_mamba.ops.causal_conv import causal_conv1d_fn, causal_conv1d_torch
from recbole_mamba.ops.selective_scan import selective_scan_fn, selective_scan_loop, selective_scan_torch

__all__ = [
    "BACKENDS",
    "causal_conv1d_fn",
    "causal_conv1d_torch",
    "resolve_backend",
    "selective_scan_fn",
    "selective_scan_loop",
    "selective_scan_torch",
]
