"""Mamba's selective scan with mamba-ssm's semantics: a fused CUDA kernel when available, else pure PyTorch.

The recurrence, per batch ``b``, channel ``d`` and state ``n``::

    h_t = exp(delta_t * A[d, n]) * h_{t-1} + delta_t * B_t[n] * u_t        (h_{-1} = 0)
    y_t = sum_n C_t[n] * h_t[n]  (+ D[d] * u_t)  (* silu(z_t))

:func:`selective_scan_fn` dispatches between mamba-ssm's fused kernel and the PyTorch path, a chunked, exact scan
that is parallel over time (:mod:`recbole_mamba.ops.chunked_scan`); :func:`selective_scan_ref` is the step-by-step
reference. All follow mamba-ssm's numerics: whatever the input dtype, everything (delta bias and softplus, the scan,
``D * u``, the ``z`` gate) is computed in float32 (float64 when an input is float64), y is rounded once to u's dtype
at the end and the last state is returned in the working dtype.
"""

import functools

import torch
import torch.nn.functional as F

from recbole_mamba.ops.backends import resolve_kernels
from recbole_mamba.ops.chunked_scan import DEFAULT_BLOCK_LEN, DEFAULT_CHUNK_LEN, chunked_scan


def _as_grouped(matrix, batch, length):
    """B or C as (batch, groups, N, L), from (batch, N, L) or (batch, groups, N, L)."""
    if matrix.dim() == 3:
        matrix = matrix.unsqueeze(1)
    if matrix.dim() != 4 or matrix.shape[0] != batch or matrix.shape[-1] != length:
        raise ValueError(
            f"B and C must be (batch, N, L) or (batch, groups, N, L) with batch={batch}, L={length}; "
            f"got {tuple(matrix.shape)}"
        )
    if not torch.is_floating_point(matrix):
        raise ValueError("B and C must be real (complex selective scans are not supported)")
    return matrix


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Validate shapes, upcast to the working dtype, apply the delta bias/softplus: (u, delta, A, B, C, D, z).

    B and C come back grouped, (batch, groups, N, L).
    """
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, dim, L); got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, dim, length = u.shape
    if A.shape[0] != dim or A.dim() != 2 or A.is_complex():
        raise ValueError(f"A must be real (dim={dim}, N); got {tuple(A.shape)} {A.dtype}")
    B, C = _as_grouped(B, batch, length), _as_grouped(C, batch, length)
    if dim % B.shape[1] or dim % C.shape[1]:
        raise ValueError(f"dim={dim} must be a multiple of the number of groups of B and C")
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in inputs if t is not None], torch.float32)
    u, delta, A, B, C, D, z, delta_bias = (None if t is None else t.to(dtype) for t in inputs)
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return u, delta, A, B, C, D, z


def _selective_scan(core, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """mamba-ssm's semantics around ``core(u, delta, A, B, C) -> (y, last state)``, the bare recurrence."""
    out_dtype = u.dtype
    with torch.autocast(u.device.type, enabled=False):  # the working dtype is chosen here, not by autocast
        u, delta, A, B, C, D, z = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        y, last_state = core(u, delta, A, B, C)
        if D is not None:
            y = torch.addcmul(y, u, D[:, None])
        if z is not None:
            y = y * F.silu(z)
    y = y.to(out_dtype)
    return (y, last_state) if return_last_state else y


def _times_grouped(values, matrix):
    """values (batch, dim, L) times B or C (batch, groups, N, L), broadcast over each group: (batch, dim, L, N)."""
    batch, groups, n_state, length = matrix.shape
    grouped = values.reshape(batch, groups, -1, length, 1) * matrix.transpose(-1, -2).unsqueeze(2)
    return grouped.reshape(batch, -1, length, n_state)


def _loop_scan(u, delta, A, B, C):
    """The recurrence step by step, one elementwise update of the (batch, dim, N) state per time step."""
    batch, dim = u.shape[:2]
    groups, n_state = C.shape[1], A.shape[1]
    decay = torch.exp(delta.unsqueeze(-1) * A[:, None, :])  # (batch, dim, L, N)
    drive = _times_grouped(delta * u, B)
    state = u.new_zeros(batch, dim, n_state)
    outputs = []
    for decay_t, drive_t, readout_t in zip(decay.unbind(2), drive.unbind(2), C.unbind(-1)):
        state = torch.addcmul(drive_t, decay_t, state)
        grouped = state.view(batch, groups, dim // groups, n_state)
        outputs.append(torch.matmul(grouped, readout_t.unsqueeze(-1)).view(batch, dim))
    return torch.stack(outputs, dim=-1), state


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """Step-by-step reference, with the signature and semantics of mamba-ssm's ``selective_scan_ref``.

    Exact by construction; in float64 it is the reference the fast paths are tested against, in float32 the
    baseline of ``recbole_mamba.bench.scan``. O(L) Python steps: use only for tests and benchmarks.
    """
    return _selective_scan(_loop_scan, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def _selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, block_len=DEFAULT_BLOCK_LEN, chunk_len=DEFAULT_CHUNK_LEN):
    """The PyTorch path: parallel over time, memory bounded by one block of ``block_len`` steps (see chunked_scan)."""
    core = functools.partial(chunked_scan, block_len=block_len, chunk_len=chunk_len)
    return _selective_scan(core, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False, backend="auto"):
    """Selective scan with mamba-ssm's ``selective_scan_fn`` signature and semantics.

    Shapes: u, delta, z (batch, dim, L); A (dim, N) real; B, C (batch, N, L) or (batch, groups, N, L);
    D, delta_bias (dim,). Returns y (batch, dim, L), in u's dtype, and, with ``return_last_state``, the last state
    (batch, dim, N), in float32 (float64 for float64 inputs). ``backend``: "cuda" (mamba-ssm's fused kernel),
    "torch" (the chunked PyTorch scan) or "auto" (cuda when the tensors are on a GPU and mamba-ssm imports).
    Unlike mamba-ssm's kernel, the PyTorch path also back-propagates the gradient of the last state.
    """
    scan = resolve_kernels(backend, u.device).scan or _selective_scan_torch
    return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
