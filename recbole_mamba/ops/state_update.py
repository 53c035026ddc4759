"""One step of Mamba's selective SSM, for recurrent inference, with mamba-ssm's ``selective_state_update`` semantics.

Per batch ``b``, channel ``d`` and state ``n``, with ``dt = softplus(dt + dt_bias)`` (each part optional)::

    state[d, n] = exp(dt[d] * A[d, n]) * state[d, n] + dt[d] * B[n] * x[d]      (in place)
    out[d] = sum_n C[n] * state[d, n]  (+ D[d] * x[d])  (* silu(z[d]))

It is the step that :func:`~recbole_mamba.ops.selective_scan_fn` takes at every position, so a scan's last state
followed by steps equals a scan over the whole sequence. The PyTorch implementation is the reference; on a CUDA
device the ``auto`` and ``cuda`` backends call mamba-ssm's Triton kernel when it imports
(:func:`~recbole_mamba.ops.backends.resolve_state_update`). Like the scan it computes in float32 (float64 for float64
inputs); ``out`` comes back in x's dtype and the state keeps its own.
"""

import functools

import torch
import torch.nn.functional as F

from recbole_mamba.ops.backends import resolve_state_update
from recbole_mamba.ops.chunked_scan import flushing_denormals


def _check_shapes(state, x, dt, A, B, C):
    if state.dim() != 3:
        raise ValueError(f"state must be (batch, dim, N); got {tuple(state.shape)}")
    batch, dim, n_state = state.shape
    expected = {"x": (x, (batch, dim)), "dt": (dt, (batch, dim)), "A": (A, (dim, n_state)),
                "B": (B, (batch, n_state)), "C": (C, (batch, n_state))}
    wrong = [f"{name} {tuple(tensor.shape)} (expected {shape})" for name, (tensor, shape) in expected.items()
             if tuple(tensor.shape) != shape]
    if wrong:
        raise ValueError(f"selective_state_update with state {tuple(state.shape)}: {', '.join(wrong)}")


@flushing_denormals  # as the scan: strong decays reach the denormal range, where CPU arithmetic crawls
def selective_state_update_torch(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """The PyTorch step: state (batch, dim, N) updated in place; returns out (batch, dim)."""
    _check_shapes(state, x, dt, A, B, C)
    out_dtype = x.dtype
    inputs = (state, x, dt, A, B, C, D, z, dt_bias)
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in inputs if t is not None], torch.float32)
    with torch.autocast(x.device.type, enabled=False):  # the working dtype is chosen here, not by autocast
        x, dt, A, B, C, D, z, dt_bias = (None if t is None else t.to(dtype) for t in inputs[1:])
        if dt_bias is not None:
            dt = dt + dt_bias
        if dt_softplus:
            dt = F.softplus(dt)
        drive = (dt * x).unsqueeze(-1) * B.unsqueeze(1)  # (batch, dim, N)
        updated = torch.addcmul(drive, torch.exp(dt.unsqueeze(-1) * A), state.to(dtype))
        state.copy_(updated)
        out = torch.matmul(updated, C.unsqueeze(-1)).squeeze(-1)
        if D is not None:
            out = torch.addcmul(out, x, D)
        if z is not None:
            out = out * F.silu(z)
    return out.to(out_dtype)


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, backend="auto"):
    """One SSM step with mamba-ssm's ``selective_state_update`` signature (see the module docstring).

    Shapes: state (batch, dim, N), updated in place; x, dt, z (batch, dim); A (dim, N); B, C (batch, N);
    D, dt_bias (dim,). Returns out (batch, dim) in x's dtype. ``backend``: as for ``selective_scan_fn``.
    """
    update = resolve_state_update(backend, state.device) or selective_state_update_torch
    return update(state, x, dt, A, B, C, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus)
