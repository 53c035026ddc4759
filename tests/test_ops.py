"""The selective scan and causal conv: exact against float64 step-by-step references, stable, bounded, dispatched."""

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_mamba.ops import (
    causal_conv1d_fn,
    causal_conv1d_torch,
    selective_scan_fn,
    selective_scan_loop,
    selective_scan_torch,
)
from recbole_mamba.ops import chunked_scan
from recbole_mamba.ops.chunked_scan import ChunkedSelectiveScan

TOLERANCE = 1e-5  # max |error| / max |reference|, float32 vs float64


def relative_error(value, reference):
    return ((value.double() - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def random_inputs(batch, dim, length, n_state, groups=None, seed=0, delta_scale=1.0, a_scale=3.0):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    bc_shape = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    return {
        "u": randn(batch, dim, length),
        "delta": randn(batch, dim, length) * delta_scale,
        "A": -torch.rand(dim, n_state, generator=generator, dtype=torch.float64) * a_scale,
        "B": randn(*bc_shape),
        "C": randn(*bc_shape),
        "D": randn(dim),
        "z": randn(batch, dim, length),
        "delta_bias": randn(dim),
    }


def outputs_and_grads(function, inputs, dtype, seed=1, **options):
    leaves = {name: value.to(dtype).requires_grad_() for name, value in inputs.items()}
    y, last_state = function(**leaves, delta_softplus=True, return_last_state=True, **options)
    generator = torch.Generator().manual_seed(seed)
    weight_y = torch.randn(y.shape, generator=generator, dtype=torch.float64).to(dtype)
    weight_state = torch.randn(last_state.shape, generator=generator, dtype=torch.float64).to(dtype)
    loss = (y * weight_y).sum() + (last_state * weight_state).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return y, last_state, dict(zip(leaves, grads))


SHAPES = [  # batch, dim, L, N, groups, block_len, chunk_len
    (2, 4, 1, 3, None, 256, 16),  # L = 1
    (2, 6, 37, 5, None, 16, 5),  # L not a multiple of block or chunk, several blocks, partial chunks
    (1, 6, 200, 4, 2, 64, 8),  # grouped B/C
    (3, 5, 129, 2, None, 256, 16),  # one block with a partial chunk
    (2, 3, 50, 1, None, 7, 3),  # tiny blocks and chunks
]


@pytest.mark.parametrize("batch, dim, length, n_state, groups, block_len, chunk_len", SHAPES)
def test_torch_scan_matches_float64_reference(batch, dim, length, n_state, groups, block_len, chunk_len):
    inputs = random_inputs(batch, dim, length, n_state, groups)
    ref_y, ref_state, ref_grads = outputs_and_grads(selective_scan_loop, inputs, torch.float64)
    y, state, grads = outputs_and_grads(selective_scan_torch, inputs, torch.float32,
                                        block_len=block_len, chunk_len=chunk_len)
    assert y.dtype == torch.float32
    assert relative_error(y, ref_y) <= TOLERANCE
    assert relative_error(state, ref_state) <= TOLERANCE
    for name, reference in ref_grads.items():
        assert relative_error(grads[name], reference) <= TOLERANCE, name


def test_large_batches_are_scanned_in_slabs_exactly_with_chunk_sized_saved_memory(monkeypatch):
    """When a whole block of the batch exceeds the block budget, the batch is split into slabs (here 10 slabs of one
    row) that keep long blocks: exact, and the graph saves one state per chunk, not one per step (as one-step
    blocks of the whole batch would, twice)."""
    monkeypatch.setattr(chunked_scan, "MAX_BLOCK_ELEMENTS", 16 * 16 * 8)
    batch, dim, length, n_state, block_len, chunk_len = 10, 16, 40, 8, 16, 4
    inputs = random_inputs(batch, dim, length, n_state)
    ref_y, ref_state, ref_grads = outputs_and_grads(selective_scan_loop, inputs, torch.float64)
    y, state, grads = outputs_and_grads(selective_scan_torch, inputs, torch.float32,
                                        block_len=block_len, chunk_len=chunk_len)
    assert relative_error(y, ref_y) <= TOLERANCE and relative_error(state, ref_state) <= TOLERANCE
    assert all(relative_error(grads[name], ref) <= TOLERANCE for name, ref in ref_grads.items())

    leaves = [inputs[name].float().requires_grad_() for name in ("u", "delta", "A", "B", "C")]
    leaves[3], leaves[4] = leaves[3].unsqueeze(1), leaves[4].unsqueeze(1)  # the core takes grouped B, C
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        chunked_scan.chunked_selective_scan(*leaves, block_len, chunk_len)
    row_state = dim * n_state
    states_kept = batch * row_state * (-(-length // block_len) + length // chunk_len)
    assert sum(saved) <= 2 * batch * dim * length + 2 * batch * n_state * length + batch * dim * n_state + states_kept
    assert sum(saved) < batch * row_state * length  # less than one state per step


def test_torch_scan_in_float64_is_exact_to_float64_precision():
    inputs = random_inputs(2, 4, 100, 3)
    ref_y, _, ref_grads = outputs_and_grads(selective_scan_loop, inputs, torch.float64)
    y, _, grads = outputs_and_grads(selective_scan_torch, inputs, torch.float64, block_len=32, chunk_len=6)
    assert relative_error(y, ref_y) <= 1e-12
    assert all(relative_error(grads[name], ref) <= 1e-12 for name, ref in ref_grads.items())


def test_reference_loop_matches_hand_computed_recurrence():
    """Two steps, one channel, one state: the loop itself is checked against the formula."""
    u, delta = torch.tensor([[[2.0, 3.0]]]), torch.tensor([[[0.5, 0.25]]])
    A, B, C = torch.tensor([[-2.0]]), torch.tensor([[[1.0, 4.0]]]), torch.tensor([[[3.0, 0.5]]])
    h0 = 0.5 * 2.0 * 1.0
    h1 = math.exp(0.25 * -2.0) * h0 + 0.25 * 3.0 * 4.0
    y = selective_scan_loop(u, delta, A, B, C, D=torch.tensor([1.5]))
    torch.testing.assert_close(y, torch.tensor([[[3.0 * h0 + 1.5 * 2.0, 0.5 * h1 + 1.5 * 3.0]]]))


def test_strong_decays_stay_finite_and_exact():
    """delta * |A| up to ~1000 per step: a cumulative-sum formulation would overflow to inf/NaN here."""
    inputs = random_inputs(2, 4, 300, 4, delta_scale=30.0, a_scale=40.0)
    ref_y, _, ref_grads = outputs_and_grads(selective_scan_loop, inputs, torch.float64)
    y, _, grads = outputs_and_grads(selective_scan_torch, inputs, torch.float32, block_len=64, chunk_len=16)
    assert torch.isfinite(y).all() and all(torch.isfinite(g).all() for g in grads.values())
    assert relative_error(y, ref_y) <= TOLERANCE
    assert all(relative_error(grads[name], ref) <= TOLERANCE for name, ref in ref_grads.items())


def test_saved_memory_is_bounded_by_inputs_not_batch_dim_length_state():
    """The graph keeps time-major copies of the inputs (u, delta, B, C) and one state per chunk, never the states."""
    batch, dim, length, n_state, block_len = 2, 64, 1024, 16, 128
    inputs = random_inputs(batch, dim, length, n_state)
    inputs["B"], inputs["C"] = inputs["B"].unsqueeze(1), inputs["C"].unsqueeze(1)  # the core takes grouped B, C
    inputs["delta"] = F.softplus(inputs["delta"])  # ... and delta after the softplus
    leaves = [inputs[name].float().requires_grad_() for name in ("u", "delta", "A", "B", "C")]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        ChunkedSelectiveScan.apply(*leaves, block_len, 16)
    full_states = batch * dim * length * n_state
    one_state = batch * dim * n_state  # per block and per chunk of 16 steps: the state entering it
    assert sum(saved) <= 2 * batch * dim * length + 2 * batch * n_state * length + dim * n_state \
        + one_state * (length // block_len + length // 16)
    assert sum(saved) < full_states / 3


def test_interleaved_calls_sharing_scratch_memory_give_independent_results():
    """Block buffers are kept from call to call: two scans run forward, forward, backward, backward (as two layers
    do) must give exactly what each gives alone, and a later call must not change an earlier call's outputs."""
    options = dict(delta_softplus=True, return_last_state=True, block_len=16, chunk_len=4)
    inputs = [random_inputs(2, 6, 70, 4, seed=seed) for seed in (0, 1)]

    def leaves(values):
        return {name: value.float().requires_grad_() for name, value in values.items()}

    def run_alone(values):
        leaf = leaves(values)
        y, last = selective_scan_torch(**leaf, **options)
        (y.sum() + last.sum()).backward()
        return y.detach(), last.detach(), {name: value.grad for name, value in leaf.items()}

    alone = [run_alone(values) for values in inputs]
    together = [leaves(values) for values in inputs]
    outputs = [selective_scan_torch(**leaf, **options) for leaf in together]
    first = [tensor.detach().clone() for tensor in outputs[0]]
    for y, last in reversed(outputs):
        (y.sum() + last.sum()).backward()
    assert all(torch.equal(tensor.detach(), copy) for tensor, copy in zip(outputs[0], first))
    for (y, last), leaf, (y_alone, last_alone, grads_alone) in zip(outputs, together, alone):
        assert torch.equal(y.detach(), y_alone) and torch.equal(last.detach(), last_alone)
        assert all(torch.equal(leaf[name].grad, grads_alone[name]) for name in leaf)


def test_scan_is_parallel_over_time():
    """Far fewer tensor operations than time steps (a step-by-step loop needs several per step)."""
    counts = {}
    for length in (512, 2048):
        inputs = random_inputs(1, 4, length, 2, groups=1)
        inputs["delta"] = F.softplus(inputs["delta"])  # the core scan takes delta after the softplus
        leaves = [inputs[name].float().requires_grad_() for name in ("u", "delta", "A", "B", "C")]
        with torch.profiler.profile() as profile:
            y, _ = ChunkedSelectiveScan.apply(*leaves, 256, 16)
            y.sum().backward()
        counts[length] = sum(event.count for event in profile.key_averages() if event.key.startswith("aten::")
                             and event.key not in ("aten::select", "aten::slice", "aten::view", "aten::as_strided"))
    assert counts[2048] < 2048, counts


def test_auto_backend_on_cpu_is_the_torch_scan():
    inputs = {k: v.float() for k, v in random_inputs(2, 4, 20, 3).items()}
    torch.testing.assert_close(selective_scan_fn(**inputs, backend="auto"), selective_scan_torch(**inputs))


def test_cuda_backend_without_gpu_is_a_one_line_error():
    inputs = {k: v.float() for k, v in random_inputs(1, 2, 5, 2).items()}
    with pytest.raises(RuntimeError, match="mamba_backend='cuda'") as error:
        selective_scan_fn(**inputs, backend="cuda")
    assert "\n" not in str(error.value)
    with pytest.raises(RuntimeError, match="mamba_backend='cuda'"):
        causal_conv1d_fn(inputs["u"], torch.randn(2, 4), backend="cuda")
    with pytest.raises(ValueError, match="unknown mamba_backend 'gpu'"):
        selective_scan_fn(**inputs, backend="gpu")


def test_bad_shapes_are_named():
    inputs = {k: v.float() for k, v in random_inputs(1, 2, 5, 2).items()}
    inputs["B"] = inputs["B"][..., :4]
    with pytest.raises(ValueError, match="B and C must be"):
        selective_scan_fn(**inputs)


@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv_matches_step_by_step_reference(activation):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, generator=generator, dtype=torch.float64)
    weight = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    expected = torch.zeros_like(x)
    for t in range(9):
        for k in range(4):
            source = t - 3 + k
            if source >= 0:
                expected[:, :, t] += weight[:, k] * x[:, :, source]
    expected += bias[:, None]
    if activation:
        expected = F.silu(expected)
    torch.testing.assert_close(causal_conv1d_fn(x, weight, bias, activation=activation), expected)
    torch.testing.assert_close(causal_conv1d_torch(x, weight, bias, activation), expected)
