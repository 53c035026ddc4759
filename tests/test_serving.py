"""Serving: recurrent inference equals the full forward; top-k recommendations from a checkpoint; resuming a run.

Model tests use tiny random models; the command-line tests train tiny models (a few seconds each) on an atomic file
written by the test.
"""

import contextlib
import json
import subprocess
import sys

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_mamba.data.item_count import ItemCount
from recbole_mamba.model import MambaMixer, RecMamba
from recbole_mamba.ops import (
    backends,
    causal_conv1d_fn,
    causal_conv1d_step,
    resolve_state_update,
    selective_scan_ref,
    selective_state_update,
)
from recbole_mamba.quick_start import Config, load_data_and_model
from recbole_mamba.quick_start.cli import main as run_main
from recbole_mamba.quick_start.recommend import main as recommend_main

TOLERANCE = 1e-5  # max abs difference, float32
N_ITEMS = 40


def random_model(style, num_layers, d_conv, max_len, seed, retrieval=False):
    config = Config(model="RecMamba", dataset="serving-test", config_dict={
        "block_style": style, "num_layers": num_layers, "d_conv": d_conv, "hidden_size": 16, "d_state": 8,
        "MAX_ITEM_LIST_LENGTH": max_len, "initializer_range": 0.5, "mamba_backend": "torch",
        "history_retrieval": retrieval})
    torch.manual_seed(seed)
    return RecMamba(config, ItemCount(N_ITEMS)).eval()


def right_padded(rows):
    """Item id lists -> (item_seq (batch, longest), lengths)."""
    lengths = torch.tensor([len(row) for row in rows])
    item_seq = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for index, row in enumerate(rows):
        item_seq[index, : len(row)] = torch.as_tensor(row)
    return item_seq, lengths


def test_state_update_steps_the_scan_exactly():
    """Steps of selective_state_update from a zero state reproduce the scan: outputs and last state (vs float64)."""
    generator = torch.Generator().manual_seed(0)
    batch, dim, n_state, length = 2, 6, 4, 37
    u, delta, z = (torch.randn(batch, dim, length, generator=generator, dtype=torch.float64) for _ in range(3))
    B, C = (torch.randn(batch, n_state, length, generator=generator, dtype=torch.float64) for _ in range(2))
    A = -torch.rand(dim, n_state, generator=generator, dtype=torch.float64) * 3
    D, bias = torch.randn(dim, generator=generator, dtype=torch.float64), torch.randn(dim, dtype=torch.float64)
    y, last = selective_scan_ref(u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True,
                                 return_last_state=True)
    state = torch.zeros(batch, dim, n_state)
    outputs = [selective_state_update(state, u[..., t].float(), delta[..., t].float(), A.float(), B[..., t].float(),
                                      C[..., t].float(), D.float(), z=z[..., t].float(), dt_bias=bias.float(),
                                      dt_softplus=True, backend="torch") for t in range(length)]
    assert (torch.stack(outputs, -1).double() - y).abs().max() / y.abs().max() < TOLERANCE
    assert (state.double() - last).abs().max() / last.abs().max() < TOLERANCE


def test_state_update_takes_mamba_ssms_triton_kernel_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a (pretended) GPU with mamba-ssm installed
    monkeypatch.setattr(backends, "_load_cuda_function", lambda module, function: f"{module}.{function}")
    triton = "mamba_ssm.ops.triton.selective_state_update.selective_state_update"
    assert resolve_state_update("auto", "cuda") == resolve_state_update("cuda", "cuda") == triton
    assert resolve_state_update("torch", "cuda") is None and resolve_state_update("auto", "cpu") is None
    monkeypatch.setattr(backends, "_load_cuda_function", lambda module, function: None)  # not installed
    assert resolve_state_update("cuda", "cuda") is None


def test_conv_step_matches_the_causal_conv():
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(2, 3, 9, generator=generator), torch.randn(3, 4), torch.randn(3)
    expected = causal_conv1d_fn(x, weight, bias, activation="silu", backend="torch")
    window = torch.zeros(2, 3, 3)
    for t in range(9):
        out, window = causal_conv1d_step(x[..., t], window, weight, bias, activation="silu")
        torch.testing.assert_close(out, expected[..., t])
    torch.testing.assert_close(window, x[..., -3:])


def test_mixer_prefill_ignores_the_padding_after_each_length():
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=8, d_state=4, d_conv=3, backend="torch")
    hidden, lengths = torch.randn(3, 40, 8), torch.tensor([1, 17, 40])
    _, state = mixer.prefill(hidden, lengths)
    for row, length in enumerate(lengths.tolist()):
        _, alone = mixer.prefill(hidden[row : row + 1, :length], lengths[row : row + 1])
        for name in ("conv", "ssm"):
            torch.testing.assert_close(state[name][row], alone[name][0], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("style, retrieval", [("paper", False), ("mamba4rec", False), ("mamba4rec", True),
                                              ("paper", True)])
def test_prefill_then_step_equals_the_full_forward(style, retrieval, seed):
    """Random model, layers, conv width, batch, history lengths (some past one scan chunk) and new items, folded in
    one at a time and a few at a time: representations and states equal a prefill of the concatenated histories."""
    generator = torch.Generator().manual_seed(seed)
    num_layers, d_conv = 1 + seed, (2, 4, 3)[seed]
    batch, new = int(torch.randint(1, 6, (1,), generator=generator)), 5
    lengths = torch.randint(1, 60, (batch,), generator=generator)
    model = random_model(style, num_layers, d_conv, max_len=80, seed=seed, retrieval=retrieval)
    histories = [torch.randint(1, N_ITEMS, (int(n),), generator=generator) for n in lengths]
    new_items = torch.randint(1, N_ITEMS, (batch, new), generator=generator)
    item_seq, item_seq_len = right_padded(histories)
    representation, state = model.prefill(item_seq, item_seq_len)
    differences = [(representation - model.forward(item_seq, item_seq_len)).abs().max()]
    for columns in (slice(0, 1), slice(1, 3), slice(3, 5)):  # (batch,), then (batch, 2) twice
        items = new_items[:, columns]
        representation, state = model.step(state, items.squeeze(1) if items.shape[1] == 1 else items)
        seen = columns.stop
        full_seq, full_len = right_padded([torch.cat([h, n[:seen]]) for h, n in zip(histories, new_items)])
        with torch.no_grad():
            differences.append((representation - model.forward(full_seq, full_len)).abs().max())
        _, reference = model.prefill(full_seq, full_len)
        assert torch.equal(state["length"], full_len)
        differences += [(state[key] - reference[key]).abs().max() for key in reference
                        if key not in ("length", "history")]
        if retrieval:  # the stored history: the items, whatever the padding after each length
            assert all(torch.equal(state["history"][row, :n], full_seq[row, :n]) for row, n in enumerate(full_len))
    worst = max(differences).item()
    print(f"{style} seed {seed}: {num_layers} layer(s), d_conv {d_conv}, batch {batch}: max abs difference {worst:.1e}")
    assert worst <= TOLERANCE


def test_a_users_state_saves_and_loads_with_weights_only(tmp_path):
    model = random_model("paper", 2, 4, max_len=30, seed=0)
    item_seq, item_seq_len = right_padded([[3, 4, 5, 6], [7, 8]])
    _, state = model.prefill(item_seq, item_seq_len)
    user = {key: value[1:2] for key, value in state.items()}
    torch.save(user, tmp_path / "user.pth")
    loaded = torch.load(tmp_path / "user.pth", weights_only=True)
    assert loaded.keys() == state.keys() == {"length", "layer0.conv", "layer0.ssm", "layer1.conv", "layer1.ssm"}
    representation, _ = model.step(loaded, torch.tensor([[9, 10]]))
    expected = model.forward(torch.tensor([[7, 8, 9, 10]]), torch.tensor([4]))
    assert (representation - expected).abs().max() <= TOLERANCE


def test_steps_past_the_position_embedding_are_refused():
    model = random_model("paper", 1, 4, max_len=4, seed=0)
    _, state = model.prefill(torch.tensor([[1, 2, 3]]), torch.tensor([3]))
    model.step(state, torch.tensor([4]))
    with pytest.raises(ValueError, match="exceeds MAX_ITEM_LIST_LENGTH=4"):
        model.step(state, torch.tensor([[4, 5]]))


# ------------------------------------------------------------------------------------------ command line, resume
HEADER = "user_id:token\titem_id:token\ttimestamp:float"
MAX_LEN = 8
SIZES = {"RecMamba": ["--hidden_size=8", "--d_state=4"], "GRU4Rec": ["--hidden_size=8", "--embedding_size=8"]}


def tiny_histories():
    """user token -> item tokens in time order; the file lists them out of time order."""
    return {f"u{user}": [f"i{(user * 5 + step) % 31}" for step in range(10)] for user in range(8)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    (folder / "data" / "tiny").mkdir(parents=True)
    rows = [f"{user}\t{item}\t{step}" for user, items in tiny_histories().items()
            for step, item in reversed(list(enumerate(items)))]
    (folder / "data" / "tiny" / "tiny.inter").write_text("\n".join([HEADER, *rows]) + "\n")
    return folder


def train(workdir, model, folder, *extra, epochs=1):
    """Train ``model`` with run.py's command line in ``workdir``, checkpoints in ``folder``; its checkpoint.

    ``eval_step`` 0: no validation, a checkpoint after every epoch.
    """
    saved = workdir / folder
    args = [f"--model={model}", "--dataset=tiny", f"--data_path={workdir / 'data'}", f"--checkpoint_dir={saved}",
            f"--MAX_ITEM_LIST_LENGTH={MAX_LEN}", *SIZES[model], "--eval_step=0", "--show_progress=False",
            f"--epochs={epochs}", *extra]
    with contextlib.chdir(workdir):
        assert run_main(args) == 0
    (path,) = saved.glob(f"{model}-*.pth")
    return path


@pytest.fixture(scope="module")
def recmamba_checkpoint(workdir):
    return train(workdir, "RecMamba", "recmamba")


def recommend(capsys, *args):
    """Run the recommend command line; (exit status, stdout lines as JSON, stderr)."""
    capsys.readouterr()
    status = recommend_main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


def recomputed_top(checkpoint, user, new_items=(), topk=5, exclude_seen=False):
    """The top-k by the model's own full_sort_predict over (history + new items)[-MAX_LEN:], the history read
    from the test's own records."""
    _, model, dataset, *_ = load_data_and_model(checkpoint)
    tokens = tiny_histories()[user] + list(new_items)
    items = torch.as_tensor(dataset.token2id(dataset.iid_field, tokens))
    context = items[-MAX_LEN:]
    batch = Interaction({model.USER_ID: torch.as_tensor([dataset.token2id(dataset.uid_field, user)]),
                         model.ITEM_SEQ: context[None], model.ITEM_SEQ_LEN: torch.tensor([len(context)])})
    with torch.no_grad():
        scores = model.full_sort_predict(batch).view(-1)
    scores[0] = -torch.inf
    if exclude_seen:
        scores[items] = -torch.inf
    top = torch.topk(scores, topk)
    return dataset.id2token(dataset.iid_field, top.indices).tolist(), top.values.tolist()


@pytest.mark.parametrize("new_items", [(), ("i3", "i30", "i7")], ids=["history", "new-items"])
def test_recmamba_recommendations_equal_recomputation(recmamba_checkpoint, capsys, new_items):
    """With --new-items RecMamba prefills the history and steps through the new items: same top-k as recomputing."""
    args = ["--checkpoint", recmamba_checkpoint, "--user", "u2", "--topk", 5, "--exclude-seen"]
    status, lines, err = recommend(capsys, *args, *(["--new-items", ",".join(new_items)] if new_items else []))
    assert status == 0, err
    (line,) = lines
    items, scores = recomputed_top(recmamba_checkpoint, "u2", new_items, exclude_seen=True)
    assert line["user"] == "u2" and line["items"] == items
    assert scores == pytest.approx(line["scores"], abs=1e-5)
    assert not set(items) & set(tiny_histories()["u2"] + list(new_items))


def test_users_file_answers_each_user_on_one_line(recmamba_checkpoint, capsys, tmp_path):
    (tmp_path / "users.txt").write_text("u1\nu5\n\nu2\n")
    status, lines, err = recommend(capsys, "--checkpoint", recmamba_checkpoint, "--users-file",
                                   tmp_path / "users.txt", "--topk", 3, "--new-items", "i4")
    assert status == 0, err
    assert [line["user"] for line in lines] == ["u1", "u5", "u2"]
    for line in lines:
        assert (line["items"], pytest.approx(line["scores"], abs=1e-5)) == recomputed_top(
            recmamba_checkpoint, line["user"], ["i4"], topk=3)


def test_recbole_model_recommends_by_recomputation(workdir, capsys):
    checkpoint = train(workdir, "GRU4Rec", "gru4rec")
    status, (line,), err = recommend(capsys, "--checkpoint", checkpoint, "--user", "u6", "--new-items", "i1,i2")
    assert status == 0, err
    items, scores = recomputed_top(checkpoint, "u6", ["i1", "i2"], topk=10)
    assert line["items"] == items and scores == pytest.approx(line["scores"], abs=1e-5)


def test_unknown_tokens_are_one_line_errors(recmamba_checkpoint, capsys, tmp_path):
    status, _, err = recommend(capsys, "--checkpoint", recmamba_checkpoint, "--user", "u1", "--new-items",
                               "i2,nope,zilch")
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("error: --new-items: unknown item_id tokens 'nope', 'zilch'")
    (tmp_path / "users.txt").write_text("u1\nghost\n")
    status, _, err = recommend(capsys, "--checkpoint", recmamba_checkpoint, "--users-file", tmp_path / "users.txt")
    assert status == 2 and f"{tmp_path / 'users.txt'}: unknown user_id token 'ghost'" in err
    # the module's own entry point: exit status 2 and one line
    done = subprocess.run([sys.executable, "-m", "recbole_mamba.recommend", "--checkpoint",
                           str(recmamba_checkpoint), "--user", "ghost"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "unknown user_id token 'ghost'" in done.stderr


def test_resumed_run_reaches_the_uninterrupted_parameters(workdir):
    """2 epochs in one go, against 1 epoch then --resume to 2: same parameters and optimizer state, bit for bit
    (shuffling, dropout and the optimizer continue where the checkpoint left them)."""
    uninterrupted = torch.load(train(workdir, "RecMamba", "whole", epochs=2), weights_only=True)
    interrupted = train(workdir, "RecMamba", "interrupted")
    after_one = torch.load(interrupted, weights_only=True)
    assert train(workdir, "RecMamba", "interrupted", f"--resume={interrupted}", epochs=2) == interrupted
    resumed = torch.load(interrupted, weights_only=True)
    assert (after_one["epoch"], uninterrupted["epoch"], resumed["epoch"]) == (0, 1, 1)
    assert not torch.equal(after_one["state_dict"]["item_embedding.weight"],
                           resumed["state_dict"]["item_embedding.weight"])
    for name, value in uninterrupted["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name
    for key, state in uninterrupted["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(resumed["optimizer"]["state"][key][name]))


def test_resume_from_a_missing_checkpoint_is_a_one_line_error(workdir, capsys):
    capsys.readouterr()
    with contextlib.chdir(workdir):
        status = run_main(["--model=RecMamba", "--dataset=tiny", f"--data_path={workdir / 'data'}",
                           f"--resume={workdir / 'missing.pth'}"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {workdir / 'missing.pth'}: no such checkpoint file;")
