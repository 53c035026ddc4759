"""The Mamba (selective state-space) block, with parameters named and shaped like mamba-ssm's ``Mamba``.

A state dict of ``mamba_ssm.modules.mamba_simple.Mamba`` (with ``bias=False, conv_bias=True``) loads 1:1 into
:class:`MambaMixer` and vice versa. The computation runs on the kernels that
:func:`recbole_mamba.ops.resolve_kernels` gives for the backend and the input's device (resolved once per device):

- ``mamba_backend="torch"``: PyTorch causal depthwise conv + the exact chunked PyTorch selective scan;
- ``"cuda"``: mamba-ssm's fused ``mamba_inner_fn`` (conv + scan + projections in one autograd function) when
  causal-conv1d is installed too, else mamba-ssm's ``selective_scan_fn`` with a PyTorch conv (as mamba-ssm's own
  ``Mamba`` does); an error naming the fix when there is no GPU or no mamba-ssm;
- ``"auto"``: each CUDA kernel that imports when the module sits on a GPU, PyTorch otherwise.

Which path actually ran is logged once per process (per distinct path).

Recurrent inference: :meth:`MambaMixer.prefill` runs the sequence and returns each sequence's state after its real
inputs (right padding ignored): the conv window (``"conv"``, the last ``d_conv - 1`` conv inputs) and the SSM state
(``"ssm"``); :meth:`MambaMixer.step` consumes one more input per sequence in O(1). Prefill then steps equals the
forward over the whole sequence.
"""

import functools
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mamba.ops import (
    causal_conv1d_step,
    causal_conv1d_torch,
    check_backend,
    resolve_kernels,
    selective_scan_fn,
    selective_state_update,
)

_logger = logging.getLogger(__name__)
_logged_paths = set()
_torch_scan = functools.partial(selective_scan_fn, backend="torch")


def log_backend_once(message):
    """Log ``message`` at INFO the first time it is seen in this process."""
    if message not in _logged_paths:
        _logged_paths.add(message)
        _logger.info(message)


def _at_least_float32(parameter):
    """A weight as mamba-ssm's kernels take it: float32 (float64 stays float64, for exact references)."""
    return parameter.to(torch.promote_types(parameter.dtype, torch.float32))


class MambaMixer(nn.Module):
    """Mamba's selective SSM block: (batch, L, d_model) -> (batch, L, d_model), causal over L.

    Args:
        d_model: input/output width.
        d_state: SSM state size N per channel.
        d_conv: width of the causal depthwise convolution.
        expand: inner width ``d_inner = expand * d_model``.
        dt_rank: rank of the delta projection; ``"auto"`` is ``ceil(d_model / 16)``.
        dt_min, dt_max: the initial step sizes are log-uniform in [dt_min, dt_max] (through the dt_proj bias).
        dt_init: ``"random"`` (uniform dt_proj weights in +-dt_rank**-0.5 * dt_scale) or ``"constant"``.
        dt_scale, dt_init_floor: as in mamba-ssm.
        conv_bias, bias: biases of conv1d and of in_proj/out_proj.
        backend: ``"auto"``, ``"torch"`` or ``"cuda"`` (see the module docstring).
    """

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1,
                 dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True, bias=False, backend="auto"):
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init must be 'random' or 'constant'; got {dt_init!r}")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.backend = check_backend(backend)
        self._kernels = {}  # (backend, device) -> Kernels
        self.dt_min, self.dt_max, self.dt_init, self.dt_scale, self.dt_init_floor = (
            dt_min, dt_max, dt_init, dt_scale, dt_init_floor)

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state))
        self.D = nn.Parameter(torch.empty(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        # mamba-ssm's markers: optimisers/initialisers that honour them skip these
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.dt_proj.bias._no_reinit = True
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self):
        """Mamba's initialisation of the SSM-specific parameters (dt_proj, A_log, D).

        Everything else keeps PyTorch's default initialisation, as in mamba-ssm's standalone ``Mamba``.
        """
        dt_init_std = self.dt_rank ** -0.5 * self.dt_scale
        if self.dt_init == "constant":
            self.dt_proj.weight.fill_(dt_init_std)
        else:
            self.dt_proj.weight.uniform_(-dt_init_std, dt_init_std)
        # initial step sizes log-uniform in [dt_min, dt_max]; the bias holds softplus^-1(dt)
        log_min, log_max = math.log(self.dt_min), math.log(self.dt_max)
        dt = torch.exp(torch.rand(self.d_inner) * (log_max - log_min) + log_min).clamp(min=self.dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real initialisation: A[d, n] = -(n + 1) for every channel d
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log.copy_(torch.log(a))
        self.D.fill_(1.0)

    def extra_repr(self):
        return (f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, expand={self.expand}, "
                f"dt_rank={self.dt_rank}, backend={self.backend!r}")

    def kernels(self, device):
        """The :class:`~recbole_mamba.ops.Kernels` of the backend on ``device``: resolved, and logged, once."""
        key = (self.backend, torch.device(device))
        if key not in self._kernels:
            self._kernels[key] = resolve_kernels(self.backend, key[1])
            log_backend_once(f"mamba backend: {self._kernels[key].describe()}")
        return self._kernels[key]

    def _ssm_parameters(self):
        """A, D and the delta bias as the scan takes them (at least float32)."""
        A = -torch.exp(_at_least_float32(self.A_log))
        return A, _at_least_float32(self.D), _at_least_float32(self.dt_proj.bias)

    def _in_projection(self, hidden_states):
        """(batch, L, d_model) -> xz (batch, 2 * d_inner, L), L contiguous (the layout mamba-ssm's kernels want)."""
        xz = torch.matmul(self.in_proj.weight, hidden_states.transpose(1, 2))
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.to(xz.dtype)[:, None]
        return xz

    def _scan_inputs(self, x, kernels):
        """x (batch, d_inner, L) before the conv -> the scan's u, delta (bias not added), B and C."""
        conv = kernels.conv or causal_conv1d_torch
        x = conv(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        x_dbl = F.linear(x.transpose(1, 2), self.x_proj.weight)  # (batch, L, dt_rank + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = torch.matmul(self.dt_proj.weight, dt.transpose(1, 2))  # (batch, d_inner, L); bias in the scan
        return x, delta, B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous()  # B, C: (batch, N, L)

    def forward(self, hidden_states):
        """hidden_states (batch, L, d_model) -> (batch, L, d_model)."""
        kernels = self.kernels(hidden_states.device)
        A, D, delta_bias = self._ssm_parameters()
        xz = self._in_projection(hidden_states)
        if kernels.inner is not None:
            return kernels.inner(
                xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight, self.dt_proj.weight,
                self.out_proj.weight, self.out_proj.bias, A, None, None, D, delta_bias=delta_bias, delta_softplus=True,
            )
        x, z = xz.chunk(2, dim=1)
        x, delta, B, C = self._scan_inputs(x, kernels)
        # both scans compute in float32 whatever the input dtype (autocast too) and return y in x's dtype
        scan = kernels.scan or _torch_scan
        y = scan(x, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=True)
        return F.linear(y.transpose(1, 2), self.out_proj.weight, self.out_proj.bias)

    def prefill(self, hidden_states, lengths):
        """The forward, plus each sequence's state after its first ``lengths`` inputs (for inference).

        hidden_states (batch, L, d_model), right-padded after ``lengths`` (batch,) real inputs, 1 <= lengths <= L.
        Returns (output (batch, L, d_model), state): ``state["conv"]`` (batch, d_inner, d_conv - 1) holds the last
        ``d_conv - 1`` conv inputs (zeros before the start), ``state["ssm"]`` (batch, d_inner, d_state) the SSM state
        at position ``lengths - 1`` (float32). Outputs at the padding positions are not those of :meth:`forward`.
        """
        kernels = self.kernels(hidden_states.device)
        A, D, delta_bias = self._ssm_parameters()
        x, z = self._in_projection(hidden_states).chunk(2, dim=1)
        width = self.d_conv - 1
        window_index = lengths[:, None] + torch.arange(width, device=x.device)  # in x padded by width zeros
        window = F.pad(x, (width, 0)).gather(2, window_index[:, None, :].expand(-1, x.shape[1], -1))
        x, delta, B, C = self._scan_inputs(x, kernels)
        # softplus(-inf) = 0 at the padding: the state neither decays nor takes input there, so the scan's last
        # state is the state at lengths - 1
        padding = torch.arange(x.shape[-1], device=x.device) >= lengths[:, None]
        delta = delta.masked_fill(padding[:, None, :], float("-inf"))
        scan = kernels.scan or _torch_scan
        y, last_state = scan(x, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=True,
                             return_last_state=True)
        output = F.linear(y.transpose(1, 2), self.out_proj.weight, self.out_proj.bias)
        return output, {"conv": window, "ssm": last_state}

    def step(self, hidden_states, state):
        """One more input per sequence: hidden_states (batch, d_model) and the state after the previous inputs (from
        :meth:`prefill` or :meth:`step`) -> (output (batch, d_model), the next state). ``state`` is not modified."""
        A, D, delta_bias = self._ssm_parameters()
        x, z = F.linear(hidden_states, self.in_proj.weight, self.in_proj.bias).chunk(2, dim=-1)
        x, window = causal_conv1d_step(x, state["conv"], self.conv1d.weight.squeeze(1), self.conv1d.bias,
                                       activation="silu")
        dt, B, C = torch.split(F.linear(x, self.x_proj.weight), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        ssm = state["ssm"].clone()
        y = selective_state_update(ssm, x, F.linear(dt, self.dt_proj.weight), A, B, C, D, z=z, dt_bias=delta_bias,
                                   dt_softplus=True, backend=self.backend)
        return F.linear(y, self.out_proj.weight, self.out_proj.bias), {"conv": window, "ssm": ssm}
