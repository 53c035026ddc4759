"""Mamba's kernels with backends: mamba-ssm / causal-conv1d CUDA kernels when present, exact PyTorch otherwise."""

from recbole_mamba.ops.backends import BACKENDS, Kernels, check_backend, resolve_kernels, resolve_state_update
from recbole_mamba.ops.causal_conv import causal_conv1d_fn, causal_conv1d_step, causal_conv1d_torch
from recbole_mamba.ops.selective_scan import selective_scan_fn, selective_scan_ref
from recbole_mamba.ops.state_update import selective_state_update, selective_state_update_torch

__all__ = [
    "BACKENDS",
    "Kernels",
    "causal_conv1d_fn",
    "causal_conv1d_step",
    "causal_conv1d_torch",
    "check_backend",
    "resolve_kernels",
    "resolve_state_update",
    "selective_scan_fn",
    "selective_scan_ref",
    "selective_state_update",
    "selective_state_update_torch",
]
