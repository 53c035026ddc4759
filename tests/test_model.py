"""RecMamba and its Mamba block: shapes, causality/padding, losses, gradients, backends. Tiny sizes: CPU-fast."""

import importlib.util
import logging
import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from recbole.data.interaction import Interaction

from recbole_mamba.data import fields
from recbole_mamba.errors import InputError
from recbole_mamba.data.item_count import ItemCount
from recbole_mamba.locations import properties_dir
from recbole_mamba.model import MambaMixer, RecMamba, all_position_training, mamba_mixer
from recbole_mamba.ops import Kernels, selective_scan_ref

MODEL_YAML = properties_dir() / "model" / "RecMamba.yaml"


def _yaml_defaults():
    """What the plugin's Config gives a model before any override: overall.yaml, then the model's yaml."""
    defaults = {}
    for path in (properties_dir() / "overall.yaml", MODEL_YAML):
        with open(path) as file:
            defaults.update(yaml.safe_load(file))
    return defaults


YAML_DEFAULTS = _yaml_defaults()
N_ITEMS = 30
MAX_LEN = 16
STYLES = ("paper", "mamba4rec")
LOSSES = ("CE", "BPR")
HAS_GPU_KERNELS = (torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm") is not None
                   and importlib.util.find_spec("causal_conv1d") is not None)


class TinyConfig(dict):
    """What RecBole's Config looks like to a model: item access, None for missing keys."""

    def __getitem__(self, key):
        return self.get(key)


def make_model(n_items=N_ITEMS, max_len=MAX_LEN, **options):
    config = TinyConfig(YAML_DEFAULTS)
    config.update(
        USER_ID_FIELD="user_id", ITEM_ID_FIELD="item_id", LIST_SUFFIX="_list", ITEM_LIST_LENGTH_FIELD="item_length",
        NEG_PREFIX="neg_", MAX_ITEM_LIST_LENGTH=max_len, device="cpu",
        hidden_size=16, d_state=4, num_layers=1, mamba_backend="torch",
    )
    config.update(options)
    torch.manual_seed(0)
    return RecMamba(config, ItemCount(n_items))


def make_batch(batch=4, length=MAX_LEN, n_items=N_ITEMS, seed=1, seq2seq=False):
    """Right-padded sequences of lengths 1..length, with RecBole's fields (or the seq2seq fields)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.linspace(1, length, batch).long()
    seq = torch.randint(1, n_items, (batch, length), generator=generator)
    positions = torch.arange(length)[None, :]
    seq = seq.masked_fill(positions >= lengths[:, None], 0)
    data = {
        "item_id_list": seq,
        "item_length": lengths,
        "item_id": torch.randint(1, n_items, (batch,), generator=generator),
        "neg_item_id": torch.randint(1, n_items, (batch,), generator=generator),
    }
    if seq2seq:
        targets = torch.randint(1, n_items, (batch, length), generator=generator)
        data[fields.TARGET_ITEM_LIST] = targets.masked_fill(positions >= lengths[:, None], 0)
        data[fields.NEG_ITEM_LIST] = torch.randint(1, n_items, (batch, length), generator=generator)
    return Interaction(data)


def test_project_config_loads_model_yaml():
    from recbole_mamba.quick_start import Config

    config = Config(model="RecMamba", dataset="ml-100k")
    with open(MODEL_YAML) as file:
        for key, value in yaml.safe_load(file).items():
            assert config[key] == value, key


def test_each_default_is_written_in_one_project_yaml():
    """overall.yaml and the model yaml files never set the same key (dataset yaml files override on purpose)."""
    seen = {}
    for path in [properties_dir() / "overall.yaml", *sorted((properties_dir() / "model").glob("*.yaml"))]:
        with open(path) as file:
            for key in yaml.safe_load(file):
                assert key not in seen, f"{key} set in {seen.get(key)} and {path.name}"
                seen[key] = path.name


def test_model_reads_its_options_from_the_config_only():
    """No fallback default in the code: an option the config lacks is an error, not a silent default."""
    with pytest.raises(TypeError):
        make_model(d_state=None)


@pytest.mark.parametrize("loss_type", LOSSES)
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seq2seq", [False, True], ids=["last", "seq2seq"])
def test_output_shapes(style, loss_type, seq2seq):
    model = make_model(block_style=style, loss_type=loss_type)
    batch = make_batch(seq2seq=seq2seq)
    loss = model.calculate_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert model.predict(batch).shape == (4,)
    assert model.full_sort_predict(batch).shape == (4, N_ITEMS)
    assert model.forward_all(batch["item_id_list"]).shape == (4, MAX_LEN, 16)


def test_position_embedding_follows_block_style_unless_set():
    assert make_model(block_style="paper").position_embedding is not None
    assert make_model(block_style="mamba4rec").position_embedding is None
    assert make_model(block_style="mamba4rec", position_embedding=True).position_embedding is not None
    assert make_model(block_style="paper", position_embedding=False).position_embedding is None


@pytest.mark.parametrize("key, value", [("block_style", "sasrec"), ("loss_type", "hinge"), ("mamba_backend", "gpu")])
def test_bad_options_are_one_line_errors(key, value):
    with pytest.raises(ValueError) as error:
        make_model(**{key: value})
    assert key in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("retrieval", [False, True])
@pytest.mark.parametrize("style", STYLES)
def test_trailing_padding_does_not_change_outputs(style, retrieval):
    model = make_model(block_style=style, max_len=24, history_retrieval=retrieval).eval()
    batch = make_batch(length=MAX_LEN)
    seq, lengths = batch["item_id_list"], batch["item_length"]
    with torch.no_grad():
        reference = model.full_sort_predict(batch)
        # more trailing padding
        longer = Interaction({"item_id_list": F.pad(seq, (0, 8)), "item_length": lengths})
        torch.testing.assert_close(model.full_sort_predict(longer), reference)
        # junk item ids in the padded positions
        junk = torch.where(seq == 0, torch.randint(1, N_ITEMS, seq.shape), seq)
        assert not torch.equal(junk, seq)
        noisy = Interaction({"item_id_list": junk, "item_length": lengths})
        torch.testing.assert_close(model.full_sort_predict(noisy), reference)
        # and every real position of the all-position states is unchanged
        real = seq > 0
        torch.testing.assert_close(model.forward_all(junk)[real], model.forward_all(seq)[real])


@pytest.mark.parametrize("loss_type", LOSSES)
@pytest.mark.parametrize("style", STYLES)
def test_seq2seq_loss_is_the_mean_of_per_position_losses(style, loss_type):
    model = make_model(block_style=style, loss_type=loss_type).eval()  # no dropout: deterministic
    batch = make_batch(batch=3, length=6, seq2seq=True)
    loss = model.calculate_loss(batch)
    targets, negatives = batch[fields.TARGET_ITEM_LIST], batch[fields.NEG_ITEM_LIST]
    weight = model.item_embedding.weight
    naive = []
    for row in range(3):
        for t in range(6):
            if targets[row, t] == 0:
                continue
            # the prefix up to t alone, as RecBole's last-position mode sees it
            hidden = model.forward(batch["item_id_list"][row : row + 1, : t + 1], torch.tensor([t + 1]))[0]
            if loss_type == "CE":
                naive.append(F.cross_entropy(hidden @ weight.T, targets[row, t]))
            else:
                margin = hidden @ weight[targets[row, t]] - hidden @ weight[negatives[row, t]]
                naive.append(-torch.log(1e-10 + torch.sigmoid(margin)))
    assert len(naive) == int((targets > 0).sum()) > 3
    torch.testing.assert_close(loss, torch.stack(naive).mean(), rtol=1e-5, atol=1e-6)


def test_recbole_derives_input_type_from_loss_type():
    from recbole.utils import InputType

    from recbole_mamba.quick_start import Config

    assert Config(model="RecMamba", dataset="ml-100k")["MODEL_INPUT_TYPE"] == InputType.POINTWISE
    bpr = Config(model="RecMamba", dataset="ml-100k", config_dict={
        "loss_type": "BPR", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})
    assert bpr["MODEL_INPUT_TYPE"] == InputType.PAIRWISE


def test_bpr_without_negatives_is_a_clear_error():
    model = make_model(loss_type="BPR")
    batch = make_batch()
    del batch.interaction["neg_item_id"]
    with pytest.raises(ValueError, match="train_neg_sample_args"):
        model.calculate_loss(batch)


def test_seq2seq_bpr_without_negatives_is_a_clear_error():
    model = make_model(loss_type="BPR")
    batch = make_batch(seq2seq=True)
    del batch.interaction[fields.NEG_ITEM_LIST]
    with pytest.raises(ValueError, match=fields.NEG_ITEM_LIST):
        model.calculate_loss(batch)


def test_seq2seq_batch_without_targets_gives_zero_loss_with_graph():
    model = make_model()
    batch = make_batch(seq2seq=True)
    batch.interaction[fields.TARGET_ITEM_LIST].zero_()
    loss = model.calculate_loss(batch)
    loss.backward()
    assert loss.item() == 0.0


@pytest.mark.parametrize("max_logits", [1, 2 * N_ITEMS, 7 * N_ITEMS, 1 << 24])
def test_sliced_cross_entropy_matches_dense(max_logits):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(13, 8, generator=generator, requires_grad=True)
    weight = torch.randn(N_ITEMS, 8, generator=generator, requires_grad=True)
    targets = torch.randint(0, N_ITEMS, (13,), generator=generator)
    upstream = torch.rand(13, generator=generator)
    dense = F.cross_entropy(hidden @ weight.T, targets, reduction="none")
    expected = torch.autograd.grad((dense * upstream).sum(), (hidden, weight))
    sliced = all_position_training.sliced_cross_entropy(hidden, weight, targets, max_logits)
    torch.testing.assert_close(sliced, dense)
    for got, want in zip(torch.autograd.grad((sliced * upstream).sum(), (hidden, weight)), expected):
        torch.testing.assert_close(got, want)


def test_model_loss_and_gradients_do_not_depend_on_slicing():
    results = []
    for max_logits in (N_ITEMS, 1 << 24):  # one position at a time vs all at once
        model = make_model(ce_slice_logits=max_logits).eval()
        loss = model.calculate_loss(make_batch(seq2seq=True))
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    for grad_a, grad_b in zip(grads_a, grads_b):
        torch.testing.assert_close(grad_a, grad_b)


@pytest.mark.parametrize("retrieval", [False, True])
@pytest.mark.parametrize("loss_type", LOSSES)
@pytest.mark.parametrize("style", STYLES)
def test_gradients_reach_every_parameter(style, loss_type, retrieval):
    model = make_model(block_style=style, loss_type=loss_type, num_layers=2, position_embedding=True,
                       history_retrieval=retrieval)
    model.calculate_loss(make_batch(seq2seq=True)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_autocast_bf16_matches_fp32():
    model = make_model(block_style="mamba4rec").eval()
    batch = make_batch(seq2seq=True)
    reference = model.calculate_loss(batch)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = model.calculate_loss(batch)
        scores = model.full_sort_predict(batch)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(scores).all()
    assert abs(loss.item() - reference.item()) < 0.05 * reference.item()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_mixer_parameters_match_mamba_ssm_layout():
    mixer = MambaMixer(d_model=32, d_state=8, d_conv=3, expand=2, dt_min=0.001, dt_max=0.1)
    shapes = {name: tuple(tensor.shape) for name, tensor in mixer.state_dict().items()}
    assert shapes == {
        "A_log": (64, 8), "D": (64,), "in_proj.weight": (128, 32), "conv1d.weight": (64, 1, 3),
        "conv1d.bias": (64,), "x_proj.weight": (2 + 16, 64), "dt_proj.weight": (64, 2), "dt_proj.bias": (64,),
        "out_proj.weight": (32, 64),
    }
    torch.testing.assert_close(mixer.A_log.exp(), torch.arange(1.0, 9.0).repeat(64, 1))
    assert torch.equal(mixer.D, torch.ones(64))
    dt = F.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    assert mixer.dt_proj.weight.abs().max() <= 2 ** -0.5


def test_mixer_matches_a_plain_float64_mamba():
    """The wiring (split order, conv, projections, delta bias/softplus, gate) against a step-by-step Mamba."""
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=8, d_state=4, d_conv=3, backend="torch").double()
    hidden = torch.randn(2, 11, 8, dtype=torch.float64)
    xz = mixer.in_proj(hidden).transpose(1, 2)
    x, z = xz[:, :16], xz[:, 16:]
    x = F.silu(mixer.conv1d(x)[..., :11])
    dt, B, C = mixer.x_proj(x.transpose(1, 2)).split([1, 4, 4], dim=-1)
    delta = F.softplus(mixer.dt_proj(dt)).transpose(1, 2)
    y = selective_scan_ref(x, delta, -mixer.A_log.exp(), B.transpose(1, 2), C.transpose(1, 2), mixer.D, z)
    expected = mixer.out_proj(y.transpose(1, 2))
    torch.testing.assert_close(mixer(hidden), expected)


def test_mixer_is_causal():
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=8, d_state=4, backend="torch")
    hidden = torch.randn(2, 12, 8)
    changed = hidden.clone()
    changed[:, 7:] = torch.randn(2, 5, 8)
    torch.testing.assert_close(mixer(changed)[:, :7], mixer(hidden)[:, :7])


def test_backend_is_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(mamba_mixer, "_logged_paths", set())
    mixer = MambaMixer(d_model=8, d_state=4, backend="auto")
    with caplog.at_level(logging.INFO, logger=mamba_mixer.__name__):
        mixer(torch.randn(1, 5, 8))
        mixer(torch.randn(1, 5, 8))
    messages = [record.getMessage() for record in caplog.records if "mamba backend" in record.getMessage()]
    expected = "torch (chunked PyTorch scan" if not HAS_GPU_KERNELS else "mamba backend"
    assert len(messages) == 1 and expected in messages[0]


def test_kernels_are_resolved_once_per_backend_and_device(monkeypatch):
    calls = []

    def resolve(backend, device):
        calls.append((backend, device))
        return Kernels()

    monkeypatch.setattr(mamba_mixer, "resolve_kernels", resolve)
    mixer = MambaMixer(d_model=8, d_state=4, backend="auto")
    for backend in ("auto", "auto", "torch", "auto"):
        mixer.backend = backend
        mixer(torch.randn(1, 5, 8))
    assert calls == [("auto", torch.device("cpu")), ("torch", torch.device("cpu"))]


def test_cuda_backend_without_gpu_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError) as error:
        make_model(mamba_backend="cuda")
    message = str(error.value)
    assert "mamba_backend" in message and "\n" not in message
    # a mixer built with backend=cuda fails the same way, with the same words
    with pytest.raises(InputError) as mixer_error:
        MambaMixer(d_model=8, d_state=4, backend="cuda")
    assert str(mixer_error.value) == message


def test_cuda_backend_on_cpu_inputs_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU exists, but the model is not on it
    mixer = MambaMixer(d_model=8, d_state=4, backend="cuda")
    with pytest.raises(InputError, match="move the model to the GPU") as error:
        mixer(torch.randn(1, 5, 8))
    assert "\n" not in str(error.value)


def test_mixer_torch_path_under_autocast_is_close_to_float32():
    """Under CPU autocast the projections and conv run in bfloat16; the scan still computes in float32."""
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=16, d_state=4, backend="torch")
    hidden = torch.randn(2, 40, 16)
    reference = mixer(hidden)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = mixer(hidden)
    assert out.dtype == torch.bfloat16
    assert ((out.float() - reference).abs().max() / reference.abs().max()).item() < 2e-2
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in mixer.parameters())


@pytest.mark.skipif(not HAS_GPU_KERNELS, reason="needs a CUDA GPU with mamba-ssm and causal-conv1d")
def test_fused_cuda_path_matches_torch_path():
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=64, d_state=32, d_conv=4, expand=2, backend="cuda").cuda()
    assert mixer.kernels(mixer.A_log.device).inner is not None, "mamba_inner_fn did not import"
    hidden = torch.randn(4, 300, 64, device="cuda")
    upstream = torch.randn(4, 300, 64, device="cuda")
    results = {}
    for backend in ("cuda", "torch"):
        mixer.backend = backend
        mixer.zero_grad()
        source = hidden.clone().requires_grad_(True)
        out = mixer(source)
        (out * upstream).sum().backward()
        results[backend] = [out.detach(), source.grad] + [p.grad.clone() for p in mixer.parameters()]
    for got, want in zip(results["cuda"], results["torch"]):
        scale = want.abs().max().clamp(min=1e-6)
        assert (got - want).abs().max() / scale < 1e-3


def test_history_retrieval_is_causal_and_reads_far_back():
    """The readout at position t changes when an item long before t changes, never when one after t does."""
    model = make_model(max_len=40, history_retrieval=True, retrieval_heads=4, dropout_prob=0.0,
                       initializer_range=0.5).eval()
    seq = torch.randint(1, N_ITEMS, (1, 40), generator=torch.Generator().manual_seed(3))
    early, late = seq.clone(), seq.clone()
    early[0, 0] = seq[0, 0] % (N_ITEMS - 1) + 1
    late[0, 30] = seq[0, 30] % (N_ITEMS - 1) + 1
    with torch.no_grad():
        reference, changed_early, changed_late = (model.forward_all(s) for s in (seq, early, late))
    torch.testing.assert_close(changed_late[0, :30], reference[0, :30])
    assert (changed_early[0, 35:] - reference[0, 35:]).abs().max() > 1e-2


def test_retrieval_heads_must_divide_hidden_size():
    with pytest.raises(InputError, match="retrieval_heads: 3 does not divide hidden_size 16"):
        make_model(history_retrieval=True, retrieval_heads=3)


def test_training_reduces_loss_on_a_recall_task():
    """Next item = a fixed function of the item 2 steps back (the one before the current): needs the sequence."""
    n_items, length, lag = 20, 24, 2
    generator = torch.Generator().manual_seed(0)
    permutation = torch.randperm(n_items - 1, generator=generator) + 1  # f: item -> item, never 0

    def sample(batch):
        seq = torch.randint(1, n_items, (batch, length + 1), generator=generator)
        for t in range(lag, length + 1):
            seq[:, t] = permutation[seq[:, t - lag] - 1]
        targets = seq[:, 1:].clone()
        targets[:, : lag - 1] = 0  # targets that are random: no loss
        return Interaction({"item_id_list": seq[:, :-1], "item_length": torch.full((batch,), length),
                            fields.TARGET_ITEM_LIST: targets})

    model = make_model(n_items=n_items, max_len=length, hidden_size=32, d_state=8, dropout_prob=0.0,
                       block_style="mamba4rec")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.calculate_loss(sample(16))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert start > 0.9 * math.log(n_items)
    assert end < 0.7 * start, losses


def test_paper_style_scales_item_embeddings_by_sqrt_hidden_size():
    model = make_model(block_style="paper", dropout_prob=0.0)  # hidden_size 16
    items, positions = torch.tensor([[3, 5, 0]]), torch.arange(3)
    expected = model.item_embedding(items) * 4.0 + model.position_embedding(positions)
    torch.testing.assert_close(model._embed(items, positions), expected)
