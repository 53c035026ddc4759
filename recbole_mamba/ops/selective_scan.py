"""Mamba's selective scan with mamba-ssm's semantics: a fused CUDA kernel when available, else pure PyTorch.

The recurrence, per batch ``b``, channel ``d`` and state ``n``::

    h_t = exp(delta_t * A[d, n]) * h_{t-1} + delta_t * B_t[n] * u_t        (h_{-1} = 0)
    y_t = sum_n C_t[n] * h_t[n]  (+ D[d] * u_t)  (* silu(z_t))

The PyTorch path is a chunked, work-efficient scan that is parallel over time: the sequence is processed in blocks
of ``block_len`` steps (memory bounded by one block, the backward recomputes it); inside a block, all chunks of
``chunk_len`` steps are scanned at once (a loop over the ``chunk_len`` positions of a chunk, vectorised over the
chunks), with the states entering the chunks chained by each chunk's decay ``exp(A * sum(delta))``. Every decay
factor is an exponential of a non-positive number (for A <= 0), so nothing can overflow.
"""

import torch
import torch.nn.functional as F

from recbole_mamba.ops.backends import resolve_backend
from recbole_mamba.ops.chunked_scan import DEFAULT_BLOCK_LEN, DEFAULT_CHUNK_LEN, chunked_selective_scan


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


def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    """Validate shapes and apply the delta bias/softplus; returns (delta, B, C) with B, C grouped."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, dim, L); got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, dim, length = u.shape
    if A.shape[0] != dim or A.dim() != 2 or A.is_complex():
        raise ValueError(f"A must be real (dim={dim}, N); got {tuple(A.shape)} {A.dtype}")
    B, C = _as_grouped(B, batch, length), _as_grouped(C, batch, length)
    if dim % B.shape[1] or dim % C.shape[1]:
        raise ValueError(f"dim={dim} must be a multiple of the number of groups of B and C")
    if delta_bias is not None:
        delta = delta + delta_bias[:, None].to(delta.dtype)
    if delta_softplus:
        delta = F.softplus(delta)
    return delta, B, C


def _finish(y, u, D, z):
    """Apply the skip connection ``D * u`` and the gate ``silu(z)``."""
    if D is not None:
        y = torch.addcmul(y, u, D[:, None].to(y.dtype))
    if z is not None:
        y = y * F.silu(z)
    return y


def _times_grouped(values, matrix):
    """values (batch, dim, L) times B or C (batch, groups, N, L), broadcast over each group: (batch, dim, L, N)."""
    batch, groups, n_state, length = matrix.shape
    grouped = values.reshape(batch, groups, -1, length, 1) * matrix.transpose(-1, -2).unsqueeze(2)
    return grouped.reshape(batch, -1, length, n_state)


def selective_scan_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                        return_last_state=False):
    """Step-by-step reference: one elementwise update of the (batch, dim, N) state per time step.

    Exact by construction; in float64 it is the reference the fast paths are tested against, in float32 the
    baseline of ``recbole_mamba.bench.scan``. O(L) Python steps: use only for tests and benchmarks.
    """
    delta, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
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
    y = _finish(torch.stack(outputs, dim=-1), u, D, z)
    return (y, state) if return_last_state else y


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, block_len=DEFAULT_BLOCK_LEN, chunk_len=DEFAULT_CHUNK_LEN):
    """Pure-PyTorch selective scan, parallel over time, memory bounded by one block (see ``chunked_scan``)."""
    delta, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    dtype = torch.promote_types(torch.promote_types(u.dtype, delta.dtype), A.dtype)
    y, last_state = chunked_selective_scan(u.to(dtype), delta.to(dtype), A.to(dtype), B.to(dtype), C.to(dtype),
                                           block_len, chunk_len)
    y = _finish(y.to(u.dtype), u, D, z)
    return (y, last_state) if return_last_state else y


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False, backend="auto"):
    """Selective scan with mamba-ssm's ``selective_scan_fn`` signature and semantics.

    Shapes: u, delta, z (batch, dim, L); A (dim, N) real; B, C (batch, N, L) or (batch, groups, N, L);
    D, delta_bias (dim,). Returns y (batch, dim, L) and, with ``return_last_state``, the last state (batch, dim, N).
    ``backend``: "cuda" (mamba-ssm's fused kernel), "torch" (:func:`selective_scan_torch`) or "auto" (cuda when the
    tensors are on a GPU and mamba-ssm imports).
    """
    cuda_fn = resolve_backend(backend, u, "mamba_ssm.ops.selective_scan_interface", "selective_scan_fn", "mamba-ssm")
    if cuda_fn is not None:
        return cuda_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
