"""The Mamba (selective state-space) block, with parameters named and shaped like mamba-ssm's ``Mamba``.

A state dict of ``mamba_ssm.modules.mamba_simple.Mamba`` (with ``bias=False, conv_bias=True``) loads 1:1 into
:class:`MambaMixer` and vice versa. The computation runs on the kernels of :mod:`recbole_mamba.ops`:

- ``mamba_backend="torch"``: PyTorch causal depthwise conv + the exact chunked PyTorch selective scan;
- ``"cuda"``: mamba-ssm's fused ``mamba_inner_fn`` (conv + scan + projections in one autograd function) when
  causal-conv1d is installed too, else mamba-ssm's ``selective_scan_fn`` with a PyTorch conv (as mamba-ssm's own
  ``Mamba`` does); an error naming the fix when there is no GPU or no mamba-ssm;
- ``"auto"``: cuda when the module sits on a GPU and mamba-ssm imports, torch otherwise.

Which path actually ran is logged once per process (per distinct path).
"""

import contextlib
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mamba.ops import BACKENDS, causal_conv1d_fn, resolve_backend, selective_scan_fn

_logger = logging.getLogger(__name__)
_logged_paths = set()

SCAN_MODULE = "mamba_ssm.ops.selective_scan_interface"


def log_backend_once(message):
    """Log ``message`` at INFO the first time it is seen in this process."""
    if message not in _logged_paths:
        _logged_paths.add(message)
        _logger.info(message)


def no_autocast(tensor):
    """A context that disables autocast for ``tensor``'s device type (a no-op where autocast is off)."""
    device_type = tensor.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def check_backend(backend):
    """Validate a ``mamba_backend`` value early, with one-line errors naming the option."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown mamba_backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "mamba_backend='cuda' needs a CUDA GPU (none is available here); set mamba_backend=auto or "
            "mamba_backend=torch"
        )
    return backend


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
        if backend not in BACKENDS:
            raise ValueError(f"unknown mamba_backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init must be 'random' or 'constant'; got {dt_init!r}")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.backend = backend
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

    def kernels(self, tensor):
        """The kernels the current backend gives for ``tensor``: (scan_cuda, conv_cuda, inner_cuda), None = torch.

        ``backend="cuda"`` requires mamba-ssm (an error otherwise); causal-conv1d stays optional, as in mamba-ssm.
        """
        scan = resolve_backend(self.backend, tensor, SCAN_MODULE, "selective_scan_fn", "mamba-ssm")
        if scan is None:
            return None, None, None
        conv = resolve_backend("auto", tensor, "causal_conv1d", "causal_conv1d_fn", "causal-conv1d")
        inner = None
        if conv is not None:
            inner = resolve_backend("auto", tensor, SCAN_MODULE, "mamba_inner_fn", "mamba-ssm")
        return scan, conv, inner

    def forward(self, hidden_states):
        """hidden_states (batch, L, d_model) -> (batch, L, d_model)."""
        scan_cuda, conv_cuda, inner_cuda = self.kernels(hidden_states)
        A = -torch.exp(self.A_log.float())
        # (batch, 2 * d_inner, L), L contiguous (the layout mamba-ssm's kernels want)
        xz = torch.matmul(self.in_proj.weight, hidden_states.transpose(1, 2))
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.to(xz.dtype)[:, None]

        if inner_cuda is not None:
            log_backend_once("mamba backend: cuda (mamba-ssm fused mamba_inner_fn)")
            return inner_cuda(
                xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight, self.dt_proj.weight,
                self.out_proj.weight, self.out_proj.bias, A, None, None, self.D.float(),
                delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
            )

        conv_backend = "cuda" if conv_cuda is not None else "torch"
        if scan_cuda is None:
            log_backend_once("mamba backend: torch (chunked PyTorch scan, PyTorch causal conv1d)")
        else:
            log_backend_once(f"mamba backend: cuda (mamba-ssm selective_scan_fn; causal conv1d: {conv_backend})")

        x, z = xz.chunk(2, dim=1)
        x = causal_conv1d_fn(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu",
                             backend=conv_backend)
        x_dbl = F.linear(x.transpose(1, 2), self.x_proj.weight)  # (batch, L, dt_rank + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = torch.matmul(self.dt_proj.weight, dt.transpose(1, 2))  # (batch, d_inner, L); bias in the scan
        B = B.transpose(1, 2).contiguous()  # (batch, N, L)
        C = C.transpose(1, 2).contiguous()
        if scan_cuda is not None:
            y = selective_scan_fn(x, delta, A, B, C, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
                                  delta_softplus=True, backend="cuda")
        else:
            # the PyTorch scan runs in (at least) float32 and outside autocast; out_proj autocasts again
            dtype = torch.promote_types(x.dtype, torch.float32)
            with no_autocast(x):
                y = selective_scan_fn(x.to(dtype), delta.to(dtype), A.to(dtype), B.to(dtype), C.to(dtype),
                                      self.D.to(dtype), z=z.to(dtype), delta_bias=self.dt_proj.bias.to(dtype),
                                      delta_softplus=True, backend="torch").to(x.dtype)
        return F.linear(y.transpose(1, 2), self.out_proj.weight, self.out_proj.bias)
