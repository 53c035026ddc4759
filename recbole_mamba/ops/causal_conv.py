"""Causal depthwise 1-d convolution with causal-conv1d's semantics: fused CUDA kernel when available, else PyTorch."""

import torch
import torch.nn.functional as F

from recbole_mamba.ops.backends import resolve_kernels

ACTIVATIONS = (None, "silu", "swish")


def causal_conv1d_torch(x, weight, bias=None, activation=None):
    """x (batch, dim, L), weight (dim, width), bias (dim,): out_t = sum_k weight[:, k] * x_{t - width + 1 + k}."""
    width = weight.shape[-1]
    out = F.conv1d(F.pad(x, (width - 1, 0)), weight.unsqueeze(1), bias, groups=x.shape[1])
    return F.silu(out) if activation in ("silu", "swish") else out


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}; got {activation!r}")


def causal_conv1d_step(x, window, weight, bias=None, activation=None):
    """One more time step of :func:`causal_conv1d_fn`, for recurrent inference (PyTorch; a few multiply-adds).

    x (batch, dim): the new input; window (batch, dim, width - 1): the previous inputs, oldest first (zeros before the
    sequence's start). Returns (out (batch, dim), the window for the next step); ``window`` is not modified.
    """
    _check_activation(activation)
    inputs = torch.cat([window, x.unsqueeze(-1)], dim=-1)  # (batch, dim, width)
    out = (inputs * weight).sum(-1)
    if bias is not None:
        out = out + bias
    return (F.silu(out) if activation in ("silu", "swish") else out), inputs[..., 1:]


def causal_conv1d_fn(x, weight, bias=None, activation=None, backend="auto"):
    """Causal depthwise conv over time, optionally followed by SiLU; same signature as causal-conv1d's."""
    _check_activation(activation)
    if x.dim() != 3 or weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"x must be (batch, dim, L) and weight (dim, width); got {tuple(x.shape)}, {tuple(weight.shape)}")
    conv = resolve_kernels(backend, x.device, required="conv").conv or causal_conv1d_torch
    return conv(x, weight, bias, activation=activation)
