"""The pure-PyTorch selective scan: chunked, parallel over time, exact, with a hand-written backward.

Core recurrence (after the delta bias/softplus; D and the z gate are applied by the caller)::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * u_t * B_t,    y_t = <h_t, C_t>

The sequence is processed in blocks (memory bounded by one block, whatever L is). Inside a block, states are kept
time-major, ``(T, batch, dim, N)``, and scanned in two passes: the last state of every chunk of ``chunk_len`` steps
is computed from a zero state, all chunks at once (a loop over the positions of a chunk); the states entering the
chunks are chained chunk to chunk with each chunk's decay product ``exp(A * sum(delta))``; then every chunk is
scanned again from its entering state. Decays are exponentials of non-positive numbers for A <= 0, never ratios of
cumulative sums, so strong decays underflow to 0 instead of overflowing to inf/NaN.

The forward keeps the state entering each chunk (one (batch, dim, N) state per ``chunk_len`` steps, as much memory
as ``u`` for N = chunk_len); the backward recomputes each block's states from them in a single pass and runs the
scan in reverse for the state gradient. Everything is done with in-place/``out=`` operations on block buffers that
are reused across blocks and kept from call to call.
"""

import contextlib
import functools
import math
import threading

import torch

DEFAULT_BLOCK_LEN = 256
DEFAULT_CHUNK_LEN = 16
MAX_BLOCK_ELEMENTS = 1 << 21  # per state buffer (8 MiB in float32; four in the backward): cache-sized blocks


def flushing_denormals(function):
    """Run ``function`` with denormals flushed to zero (restored afterwards).

    Products of strong decays reach the denormal range, where CPU arithmetic is 10-100x slower; values that small
    (< 1e-38) are zero at float32/float64 working precision anyway.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            if torch.set_flush_denormal(True):
                stack.callback(torch.set_flush_denormal, False)
            return function(*args, **kwargs)

    return wrapper


def _chunking(length, chunk_len):
    """(chunk length, number of whole chunks, length they cover) for a block of ``length`` steps."""
    chunk_len = min(chunk_len, length)
    n_chunks = length // chunk_len
    return chunk_len, n_chunks, n_chunks * chunk_len


def _scan_inplace(x, decay, carry, chunk_len, reverse, totals, entering=None):
    """Turn ``x`` (T, ...) into the states of ``x_t += decay_t * x_{t-1}`` (or ``x_{t+1}`` when ``reverse``).

    ``carry`` is the state before the first step (after the last when ``reverse``). In reverse, ``decay_t`` is the
    factor applied to ``x_{t+1}``. Two passes: every whole chunk's final state is computed from zero (all chunks
    at once, in two chunk-sized buffers), the carries are chained chunk to chunk with each chunk's decay product,
    and the chunks are scanned again from them. ``totals`` (n_chunks, ...) is the product of each whole chunk's
    decays (:func:`_chunk_decay_products`). The state entering each whole chunk is written into ``entering``
    (n_chunks, ...) when given.
    """
    length = x.shape[0]
    chunk_len, n_chunks, body = _chunking(length, chunk_len)
    if reverse and length > body:  # the partial chunk sits at the end: step through it first
        carry = _step_through(x, decay, carry, range(length - 1, body - 1, -1))
    if n_chunks:
        xs, ds = _positions(x, body, chunk_len), _positions(decay, body, chunk_len)
        entering = x.new_empty(n_chunks, *x.shape[1:]) if entering is None else entering
        finals = _chunk_finals(xs, ds, reverse).unbind(0)
        totals = totals.unbind(0)
        states_in = entering.unbind(0)
        chunks = range(n_chunks - 1, -1, -1) if reverse else range(n_chunks)
        states_in[chunks[0]].copy_(carry)
        for k, following in zip(chunks, chunks[1:]):
            torch.addcmul(finals[k], totals[k], states_in[k], out=states_in[following])
        carry = finals[chunks[-1]].addcmul_(totals[chunks[-1]], states_in[chunks[-1]])
        _rescan_chunks(xs, ds, entering, reverse)
    if not reverse and length > body:
        _step_through(x, decay, carry, range(body, length))


def _chunk_decay_products(delta, A, chunk_len):
    """prod_t exp(delta_t * A) over each whole chunk of ``delta`` (T, batch, dim), as exp(A * sum_t delta_t)."""
    chunk_len, n_chunks, body = _chunking(delta.shape[0], chunk_len)
    sums = delta[:body].view(n_chunks, chunk_len, *delta.shape[1:]).sum(1)
    return torch.mul(sums.unsqueeze(-1), A).exp_()


def _shifted(delta, window):
    """``delta`` over ``window`` moved one step earlier: the step after the window enters last, 0 past the end."""
    following = delta[window.stop : window.stop + 1]
    if not len(following):
        following = delta.new_zeros(1, *delta.shape[1:])
    return torch.cat([delta[window.start + 1 : window.stop], following])


def _positions(x, body, chunk_len):
    """The first ``body`` steps of ``x`` (T, ...) by position in the chunk: chunk_len views (n_chunks, ...)."""
    return x[:body].view(body // chunk_len, chunk_len, *x.shape[1:]).unbind(1)


def _chunk_finals(xs, ds, reverse):
    """The last state of each chunk (first when ``reverse``) scanned from zero: (n_chunks, ...), ``xs`` untouched."""
    positions = list(zip(xs, ds))
    if reverse:
        positions.reverse()
    buffers = (torch.empty_like(xs[0]), torch.empty_like(xs[0]))
    state = positions[0][0]
    for index, (x_t, d_t) in enumerate(positions[1:]):
        state = torch.addcmul(x_t, d_t, state, out=buffers[index % 2])
    return state.clone() if len(positions) == 1 else state


def _rescan_chunks(xs, ds, entering, reverse):
    """Scan the chunks in place by position (``xs``, ``ds`` from :func:`_positions`), chunk ``k`` entered with
    ``entering[k]``."""
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    previous = entering
    for t in order:
        previous = xs[t].addcmul_(ds[t], previous)


def _step_through(x, decay, carry, steps):
    """``x_t += decay_t * (previous state)`` over ``steps`` in the order given, from ``carry``; returns the last."""
    for t in steps:
        carry = x[t].addcmul_(decay[t], carry)
    return carry


def _rescan_inplace(x, decay, chunk_len, entering):
    """Forward :func:`_scan_inplace` again, given the chunk-entering states it recorded: one pass, no carries."""
    length = x.shape[0]
    chunk_len, n_chunks, body = _chunking(length, chunk_len)
    _rescan_chunks(_positions(x, body, chunk_len), _positions(decay, body, chunk_len), entering, reverse=False)
    _step_through(x, decay, x[body - 1], range(body, length))


class _TimeMajorInputs:
    """The scan's inputs laid out time-major, so that per-step slices are contiguous; kept for the backward."""

    def __init__(self, delta, u, B, C):
        self.delta, self.u, self.B, self.C = delta, u, B, C  # (L, batch, dim) x2, (L, batch, groups, N) x2

    @classmethod
    def of(cls, u, delta, B, C):
        return cls(delta.permute(2, 0, 1).contiguous(), u.permute(2, 0, 1).contiguous(),
                   B.permute(3, 0, 1, 2).contiguous(), C.permute(3, 0, 1, 2).contiguous())

    def saved(self):
        return self.delta, self.u, self.B, self.C


class _ScratchMemory(threading.local):
    """Block-sized scratch memory kept from call to call, per thread, dtype and device.

    Allocating the block buffers anew at every call costs a page fault at each first touch (the allocator hands
    large blocks back to the system): about 9,000 per forward + backward at L=2048, batch 2, dim 128, N 16, several
    milliseconds. What is kept is bounded by the block size (at most ``MAX_BLOCK_ELEMENTS`` per state buffer).
    """

    def __init__(self):
        self.flat = {}

    def buffers(self, like, shapes):
        """Tensors of the given shapes, views into memory owned by this object; valid until the next call."""
        sizes = [math.prod(shape) for shape in shapes]
        total, key = sum(sizes), (like.dtype, like.device)
        if key not in self.flat or self.flat[key].numel() < total:
            self.flat.pop(key, None)  # free before allocating the larger one
            self.flat[key] = like.new_empty(total)
        chunks = self.flat[key][:total].split(sizes)
        return [chunk.view(shape) for chunk, shape in zip(chunks, shapes)]


_SCRATCH = _ScratchMemory()


class _Workspace:
    """Buffers of one block, reused for every block (and, through ``_SCRATCH``, for every call).

    (T + 1, batch, dim, N): ``states`` (slot 0: the state before the block), ``decay`` (slot T: the decay after it);
    in the backward also ``grad`` and ``work``. (T, batch, dim): ``drive`` (delta * u) and ``out`` (y in the
    forward; the time-major output gradient in the backward), and in the backward ``grad_drive``, ``grad_delta``.
    """

    STATE_BUFFERS = {False: ("states", "decay"), True: ("states", "decay", "grad", "work")}
    STEP_BUFFERS = {False: ("drive", "out"), True: ("drive", "out", "grad_drive", "grad_delta")}

    def __init__(self, like, block_len, n_state, backward):
        steps = (block_len, *like.shape[1:])  # like: (L, batch, dim)
        state_names, step_names = self.STATE_BUFFERS[backward], self.STEP_BUFFERS[backward]
        shapes = [(block_len + 1, *steps[1:], n_state)] * len(state_names) + [steps] * len(step_names)
        for name, buffer in zip(state_names + step_names, _SCRATCH.buffers(like, shapes)):
            setattr(self, name, buffer)


def _block_states(inputs, A, window, carry, space, chunk_len, entering, recorded):
    """Fill ``space.drive`` with delta * u and ``space.states[1:T+1]`` with the block's states from ``carry``.

    ``entering`` (n_chunks, batch, dim, N) holds the state entering each whole chunk: written when ``recorded`` is
    False (the forward), read when True (the backward's recomputation, then a single pass, which also puts
    ``carry`` in ``space.states[0]`` so that ``space.states[:T]`` are the states before each step).
    Returns (drive (T, batch, dim), states (T, batch, dim, N), decay (T, batch, dim, N)) views into the workspace.
    """
    length = window.stop - window.start
    batch, groups, n_state = inputs.B.shape[1:]
    drive = torch.mul(inputs.delta[window], inputs.u[window], out=space.drive[:length])
    states = space.states[1 : length + 1]
    torch.mul(_grouped(drive, groups).unsqueeze(-1), inputs.B[window].unsqueeze(3), out=_grouped(states, groups))
    decay = space.decay[:length]
    torch.mul(inputs.delta[window].unsqueeze(-1), A, out=decay).exp_()
    if recorded:
        _rescan_inplace(states, decay, chunk_len, entering)
        space.states[0].copy_(carry)
    else:
        totals = _chunk_decay_products(inputs.delta[window], A, chunk_len)
        _scan_inplace(states, decay, carry, chunk_len, reverse=False, totals=totals, entering=entering)
    return drive, states, decay


def _grouped(tensor, groups):
    """(T, batch, dim, ...) viewed as (T, batch, groups, dim // groups, ...)."""
    return tensor.view(*tensor.shape[:2], groups, tensor.shape[2] // groups, *tensor.shape[3:])


def _blocks(length, block_len):
    """The windows of the blocks, first to last."""
    return [slice(start, min(start + block_len, length)) for start in range(0, length, block_len)]


class _ChunkedScan(torch.autograd.Function):
    """y = <h_t, C_t> and the last state, for u, delta (batch, dim, L), A (dim, N), B, C (batch, groups, N, L).

    Inputs and outputs are contiguous (batch, dim, L); each block is turned time-major on its way in and out (a
    contiguous layout on both sides keeps the elementwise operations around the scan fast).
    """

    @staticmethod
    @flushing_denormals
    def forward(ctx, u, delta, A, B, C, block_len, chunk_len):
        batch, dim, length = u.shape
        groups, n_state = B.shape[1], A.shape[1]
        per_group = dim // groups
        block_len = max(1, min(block_len, length, MAX_BLOCK_ELEMENTS // (batch * dim * n_state)))
        inputs = _TimeMajorInputs.of(u, delta, B, C)
        space = _Workspace(inputs.u, block_len, n_state, backward=False)
        y = torch.empty_like(u)
        carry = u.new_zeros(batch, dim, n_state)
        entering, chunk_entering = [], []
        for window in _blocks(length, block_len):
            entering.append(carry)
            n_chunks = _chunking(window.stop - window.start, chunk_len)[1]
            chunk_entering.append(u.new_empty(n_chunks, batch, dim, n_state))
            _, states, _ = _block_states(inputs, A, window, carry, space, chunk_len, chunk_entering[-1],
                                         recorded=False)
            # y_t = <h_t, C_t> as one batched product per (step, batch, group), C_t^T h_t^T: a row times a
            # transposed matrix is BLAS's fast case
            y_block = space.out[: window.stop - window.start]
            torch.bmm(inputs.C[window].view(-1, 1, n_state), states.view(-1, per_group, n_state).transpose(1, 2),
                      out=y_block.view(-1, 1, per_group))
            y[..., window].copy_(y_block.permute(1, 2, 0))
            carry = states[-1].clone()
        ctx.save_for_backward(A, *inputs.saved(), torch.stack(entering), *chunk_entering)
        ctx.block_len, ctx.chunk_len = block_len, chunk_len
        return y, carry

    @staticmethod
    @flushing_denormals
    def backward(ctx, grad_y, grad_last):
        A, *time_major, entering = ctx.saved_tensors[:6]
        chunk_entering = ctx.saved_tensors[6:]
        inputs = _TimeMajorInputs(*time_major)
        block_len, chunk_len = ctx.block_len, ctx.chunk_len
        length, batch, dim = inputs.u.shape
        groups, n_state = inputs.B.shape[2], A.shape[1]
        per_group = dim // groups
        space = _Workspace(inputs.u, block_len, n_state, backward=True)
        grad_state = A.new_zeros(batch, dim, n_state) if grad_last is None else grad_last.contiguous()
        next_decay = torch.ones_like(grad_state)  # h_L = h_{L-1}: the last state's gradient enters undecayed
        grad_u, grad_delta = A.new_empty(batch, dim, length), A.new_empty(batch, dim, length)
        grad_A = torch.zeros_like(A)
        ones, ones_steps = A.new_ones(n_state), A.new_ones(block_len * batch)
        grad_B, grad_C = torch.empty_like(inputs.B), torch.empty_like(inputs.C)
        for index, window in reversed(list(enumerate(_blocks(length, block_len)))):
            steps = window.stop - window.start
            drive, states, decay = _block_states(inputs, A, window, entering[index], space, chunk_len,
                                                 chunk_entering[index], recorded=True)
            space.decay[steps].copy_(next_decay)
            grad_out = space.out[:steps]
            if grad_y is None:
                grad_out.zero_()
            else:
                grad_out.copy_(grad_y[..., window].permute(2, 0, 1))
            # state gradient: g_t = C_t * gy_t + decay_{t+1} * g_{t+1}
            grad_h = space.grad[:steps]
            torch.mul(_grouped(grad_out, groups).unsqueeze(-1), inputs.C[window].unsqueeze(3),
                      out=_grouped(grad_h, groups))
            _scan_inplace(grad_h, space.decay[1 : steps + 1], grad_state, chunk_len, reverse=True,
                          totals=_chunk_decay_products(_shifted(inputs.delta, window), A, chunk_len))
            grad_state, next_decay = grad_h[0].clone(), decay[0].clone()
            work = space.work[:steps]
            grad_drive, grad_delta_block = space.grad_drive[:steps], space.grad_delta[:steps]
            # sums over a group's channels (grad C, grad B) or over the N states (grad of delta * u), as bmm
            torch.bmm(grad_out.view(-1, 1, per_group), states.view(-1, per_group, n_state),
                      out=grad_C[window].view(-1, 1, n_state))
            torch.bmm(drive.view(-1, 1, per_group), grad_h.view(-1, per_group, n_state),
                      out=grad_B[window].view(-1, 1, n_state))
            torch.bmm(inputs.B[window].view(-1, 1, n_state), grad_h.view(-1, per_group, n_state).transpose(1, 2),
                      out=grad_drive.view(-1, 1, per_group))
            # decay = exp(delta * A): d/d(delta * A) = g_t * h_{t-1} * decay_t
            torch.mul(grad_h, space.states[:steps], out=work).mul_(decay)
            # sum over (step, batch) of work * delta: a transposed matrix times ones, like the sum over N below
            weighted = torch.mul(work, inputs.delta[window].unsqueeze(-1), out=decay)  # decay is used up here
            grad_A.view(-1).addmv_(weighted.view(steps * batch, -1).t(), ones_steps[: steps * batch])
            # the sum over N as a matrix-vector product with ones: BLAS beats a reduction over a 16-wide last dim
            torch.mv(work.mul_(A).view(-1, n_state), ones, out=grad_delta_block.view(-1))
            grad_delta[..., window].copy_(grad_delta_block.addcmul_(grad_drive, inputs.u[window]).permute(1, 2, 0))
            grad_u[..., window].copy_(grad_drive.mul_(inputs.delta[window]).permute(1, 2, 0))
        return grad_u, grad_delta, grad_A, grad_B.permute(1, 2, 3, 0), grad_C.permute(1, 2, 3, 0), None, None


def chunked_scan(u, delta, A, B, C, block_len=DEFAULT_BLOCK_LEN, chunk_len=DEFAULT_CHUNK_LEN):
    """The core recurrence over slabs of the batch: (y (batch, dim, L), last state (batch, dim, N)).

    A slab holds as many batch rows as fit ``MAX_BLOCK_ELEMENTS`` with a whole block of steps, so that large
    batches keep long blocks (and one saved state per chunk) instead of falling back to one-step blocks.
    """
    batch, dim, length = u.shape
    steps = min(block_len, length)
    rows = max(1, MAX_BLOCK_ELEMENTS // (steps * dim * A.shape[1]))
    if rows >= batch:
        return _ChunkedScan.apply(u, delta, A, B, C, block_len, chunk_len)
    pieces = zip(u.split(rows), delta.split(rows), B.split(rows), C.split(rows))
    slabs = [_ChunkedScan.apply(u_rows, delta_rows, A, B_rows, C_rows, block_len, chunk_len)
             for u_rows, delta_rows, B_rows, C_rows in pieces]
    return torch.cat([y for y, _ in slabs]), torch.cat([last for _, last in slabs])
