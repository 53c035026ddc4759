"""The selective scan and causal conv: exact against float64 step-by-step references, stable, bounded, dispatched;
mamba-ssm's numerics in half precision; the backend resolved in one place."""

import functools
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from recbole_mamba.errors import InputError

from recbole_mamba.ops import (
    Kernels,
    backends,
    causal_conv1d_fn,
    causal_conv1d_torch,
    check_backend,
    chunked_scan,
    resolve_kernels,
    selective_scan_fn,
    selective_scan_ref,
)
from recbole_mamba.ops.selective_scan import _selective_scan_torch  # white-box: explicit block and chunk lengths

torch_scan = functools.partial(selective_scan_fn, backend="torch")

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
    ref_y, ref_state, ref_grads = outputs_and_grads(selective_scan_ref, inputs, torch.float64)
    y, state, grads = outputs_and_grads(_selective_scan_torch, inputs, torch.float32,
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
    ref_y, ref_state, ref_grads = outputs_and_grads(selective_scan_ref, inputs, torch.float64)
    y, state, grads = outputs_and_grads(_selective_scan_torch, inputs, torch.float32,
                                        block_len=block_len, chunk_len=chunk_len)
    assert relative_error(y, ref_y) <= TOLERANCE and relative_error(state, ref_state) <= TOLERANCE
    assert all(relative_error(grads[name], ref) <= TOLERANCE for name, ref in ref_grads.items())

    leaves = [inputs[name].float().requires_grad_() for name in ("u", "delta", "A", "B", "C")]
    leaves[3], leaves[4] = leaves[3].unsqueeze(1), leaves[4].unsqueeze(1)  # the core takes grouped B, C
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        chunked_scan.chunked_scan(*leaves, block_len, chunk_len)
    row_state = dim * n_state
    states_kept = batch * row_state * (-(-length // block_len) + length // chunk_len)
    assert sum(saved) <= 2 * batch * dim * length + 2 * batch * n_state * length + batch * dim * n_state + states_kept
    assert sum(saved) < batch * row_state * length  # less than one state per step


def test_torch_scan_in_float64_is_exact_to_float64_precision():
    inputs = random_inputs(2, 4, 100, 3)
    ref_y, _, ref_grads = outputs_and_grads(selective_scan_ref, inputs, torch.float64)
    y, _, grads = outputs_and_grads(_selective_scan_torch, inputs, torch.float64, block_len=32, chunk_len=6)
    assert relative_error(y, ref_y) <= 1e-12
    assert all(relative_error(grads[name], ref) <= 1e-12 for name, ref in ref_grads.items())


def test_reference_loop_matches_hand_computed_recurrence():
    """Two steps, one channel, one state: the loop itself is checked against the formula."""
    u, delta = torch.tensor([[[2.0, 3.0]]]), torch.tensor([[[0.5, 0.25]]])
    A, B, C = torch.tensor([[-2.0]]), torch.tensor([[[1.0, 4.0]]]), torch.tensor([[[3.0, 0.5]]])
    h0 = 0.5 * 2.0 * 1.0
    h1 = math.exp(0.25 * -2.0) * h0 + 0.25 * 3.0 * 4.0
    y = selective_scan_ref(u, delta, A, B, C, D=torch.tensor([1.5]))
    torch.testing.assert_close(y, torch.tensor([[[3.0 * h0 + 1.5 * 2.0, 0.5 * h1 + 1.5 * 3.0]]]))


def test_strong_decays_stay_finite_and_exact():
    """delta * |A| up to ~1000 per step: a cumulative-sum formulation would overflow to inf/NaN here."""
    inputs = random_inputs(2, 4, 300, 4, delta_scale=30.0, a_scale=40.0)
    ref_y, _, ref_grads = outputs_and_grads(selective_scan_ref, inputs, torch.float64)
    y, _, grads = outputs_and_grads(_selective_scan_torch, inputs, torch.float32, block_len=64, chunk_len=16)
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
        chunked_scan.chunked_scan(*leaves, block_len, 16)
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
        y, last = _selective_scan_torch(**leaf, **options)
        (y.sum() + last.sum()).backward()
        return y.detach(), last.detach(), {name: value.grad for name, value in leaf.items()}

    alone = [run_alone(values) for values in inputs]
    together = [leaves(values) for values in inputs]
    outputs = [_selective_scan_torch(**leaf, **options) for leaf in together]
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
            y, _ = chunked_scan.chunked_scan(*leaves, 256, 16)
            y.sum().backward()
        counts[length] = sum(event.count for event in profile.key_averages() if event.key.startswith("aten::")
                             and event.key not in ("aten::select", "aten::slice", "aten::view", "aten::as_strided"))
    assert counts[2048] < 2048, counts


def mamba_ssm_test_inputs(dtype, length, groups, has_D, has_z, has_delta_bias, seed=0):
    """Inputs drawn as mamba-ssm's test_selective_scan draws them: batch 2, dim 4, N 8; u, delta, B, C, z in
    ``dtype``; A, D, delta_bias in float32."""
    generator = torch.Generator().manual_seed(seed)
    bc_shape = (2, 8, length) if groups == 1 else (2, groups, 8, length)
    inputs = {
        "u": torch.randn(2, 4, length, generator=generator),
        "delta": 0.5 * torch.rand(2, 4, length, generator=generator),
        "A": -0.5 * torch.rand(4, 8, generator=generator),
        "B": torch.randn(*bc_shape, generator=generator),
        "C": torch.randn(*bc_shape, generator=generator),
        "D": torch.randn(4, generator=generator) if has_D else None,
        "z": torch.randn(2, 4, length, generator=generator) if has_z else None,
        "delta_bias": 0.5 * torch.rand(4, generator=generator) if has_delta_bias else None,
    }
    in_dtype = ("u", "delta", "B", "C", "z")
    return {name: value.to(dtype) if name in in_dtype else value for name, value in inputs.items() if value is not None}


def mamba_ssm_tolerances(dtype, has_z):
    """mamba-ssm's test_selective_scan (rtol, atol) for the output, the last state and each gradient."""
    rtol, atol = {torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}[dtype]
    rtol_w, atol_w = (max(1e-3, rtol), max(1e-3, atol)) if has_z else (1e-3, 1e-3)  # weights: higher with z
    return {"y": (rtol, atol), "state": (rtol, atol), "u": (2 * rtol, 2 * atol), "delta": (5 * rtol, 10 * atol),
            "A": (rtol_w, 5 * atol_w), "B": (rtol, atol), "C": (rtol, atol), "D": (rtol_w, atol_w),
            "z": (rtol_w, atol_w), "delta_bias": (rtol_w, atol_w)}


HALF_DTYPES = ("float16", "bfloat16")
HALF_PRECISION_CASES = (
    # every combination of mamba-ssm's options at one length (two blocks, a partial chunk) ...
    [(dtype, 300, *flags) for dtype in HALF_DTYPES for flags in itertools.product((1, 2), *[(False, True)] * 4)]
    # ... and mamba-ssm's own configuration (all options on) over short and long sequences
    + [(dtype, length, groups, True, True, True, True) for dtype in HALF_DTYPES
       for length, groups in ((8, 1), (128, 2), (1134, 1))]
)


@pytest.mark.parametrize("dtype_name, length, groups, delta_softplus, has_D, has_z, has_delta_bias",
                         HALF_PRECISION_CASES)
def test_half_precision_follows_mamba_ssm(dtype_name, length, groups, delta_softplus, has_D, has_z, has_delta_bias):
    """float16/bfloat16 inputs against the float32 reference with mamba-ssm's tolerances: as in its CUDA kernel,
    everything is computed in float32, y is rounded once to the input dtype and the last state stays float32."""
    dtype = getattr(torch, dtype_name)
    leaves = {name: value.requires_grad_()
              for name, value in mamba_ssm_test_inputs(dtype, length, groups, has_D, has_z, has_delta_bias).items()}
    references = {name: value.detach().float().requires_grad_() for name, value in leaves.items()}
    y, state = torch_scan(**leaves, delta_softplus=delta_softplus, return_last_state=True)
    ref_y, ref_state = selective_scan_ref(**references, delta_softplus=delta_softplus, return_last_state=True)
    assert y.dtype == dtype and state.dtype == torch.float32
    upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    y.backward(upstream)
    ref_y.backward(upstream.float())
    compared = {"y": (y, ref_y.to(dtype)), "state": (state, ref_state)}
    compared.update({name: (leaf.grad, references[name].grad.to(leaf.dtype)) for name, leaf in leaves.items()})
    tolerances = mamba_ssm_tolerances(dtype, has_z)
    failed = {name: (got.float() - want.float()).abs().max().item() for name, (got, want) in compared.items()
              if not torch.allclose(got, want, *tolerances[name])}
    assert not failed, failed


@pytest.mark.parametrize("dtype_name", HALF_DTYPES)
def test_reference_in_half_precision_is_the_float32_reference_rounded_once(dtype_name):
    """As mamba-ssm's selective_scan_ref: computed in float32, y rounded to the input dtype, last state float32."""
    dtype = getattr(torch, dtype_name)
    inputs = mamba_ssm_test_inputs(dtype, 20, 1, has_D=True, has_z=True, has_delta_bias=True)
    y, state = selective_scan_ref(**inputs, delta_softplus=True, return_last_state=True)
    ref_y, ref_state = selective_scan_ref(**{name: value.float() for name, value in inputs.items()},
                                          delta_softplus=True, return_last_state=True)
    assert torch.equal(y, ref_y.to(dtype)) and torch.equal(state, ref_state)


def test_autocast_does_not_change_the_scans():
    """The scans choose their own precision: under autocast, the PyTorch path (forward and backward) and the
    reference are bit-identical."""
    inputs = {name: value.float() for name, value in random_inputs(2, 4, 40, 3).items()}

    def outputs():
        leaves = {name: value.clone().requires_grad_() for name, value in inputs.items()}
        y, state = torch_scan(**leaves, delta_softplus=True, return_last_state=True)
        grads = torch.autograd.grad((y * y).sum() + state.sum(), list(leaves.values()))
        return [y, state, *grads, selective_scan_ref(**inputs, delta_softplus=True)]

    expected = outputs()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = outputs()
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_auto_backend_on_cpu_is_the_torch_scan():
    inputs = {k: v.float() for k, v in random_inputs(2, 4, 20, 3).items()}
    torch.testing.assert_close(selective_scan_fn(**inputs, backend="auto"), torch_scan(**inputs))


def test_cuda_backend_without_gpu_is_a_one_line_error():
    inputs = {k: v.float() for k, v in random_inputs(1, 2, 5, 2).items()}
    with pytest.raises(InputError, match="mamba_backend: 'cuda'") as error:
        selective_scan_fn(**inputs, backend="cuda")
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="mamba_backend: 'cuda'"):
        causal_conv1d_fn(inputs["u"], torch.randn(2, 4), backend="cuda")
    with pytest.raises(InputError, match="mamba_backend: unknown value 'gpu'"):
        selective_scan_fn(**inputs, backend="gpu")


def test_check_backend_accepts_auto_and_torch_and_names_the_fix_for_cuda_without_gpu(monkeypatch):
    assert [check_backend(backend) for backend in ("auto", "torch")] == ["auto", "torch"]
    with pytest.raises(InputError, match="mamba_backend: unknown value 'gpu'; choose one of auto, torch, cuda"):
        check_backend("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="needs a CUDA GPU .*; set mamba_backend=auto or mamba_backend=torch"):
        check_backend("cuda")


@pytest.mark.parametrize("installed", [(), ("causal_conv1d",), ("mamba_ssm",), ("mamba_ssm", "causal_conv1d")])
def test_kernels_are_resolved_per_backend_and_device(monkeypatch, installed):
    """On a (pretended) GPU: auto takes each kernel whose package imports, the fused one only with both; cuda
    requires the kernel asked for; torch, or a CPU device under auto, is always the PyTorch implementation."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backends, "_load_cuda_function", lambda module, function:
                        f"{module}.{function}" if module.split(".")[0] in installed else None)
    has_scan, has_conv = "mamba_ssm" in installed, "causal_conv1d" in installed
    assert resolve_kernels("torch", "cuda") == Kernels() == resolve_kernels("auto", "cpu")
    kernels = resolve_kernels("auto", "cuda")
    assert kernels == Kernels(
        scan="mamba_ssm.ops.selective_scan_interface.selective_scan_fn" if has_scan else None,
        conv="causal_conv1d.causal_conv1d_fn" if has_conv else None,
        inner="mamba_ssm.ops.selective_scan_interface.mamba_inner_fn" if has_scan and has_conv else None,
    )
    for required, present, package in (("scan", has_scan, "mamba-ssm"), ("conv", has_conv, "causal-conv1d")):
        if present:
            assert resolve_kernels("cuda", "cuda", required=required) == kernels
        else:
            with pytest.raises(InputError, match=f"needs the {package} package"):
                resolve_kernels("cuda", "cuda", required=required)
    with pytest.raises(InputError, match="needs the model and its inputs on a CUDA GPU .*cpu.*move the model"):
        resolve_kernels("cuda", "cpu")


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
