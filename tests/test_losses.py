"""Losses that scale with the batch (sampled softmax, BCE) and sparse embedding updates, against direct computations.

Tiny sizes: CPU-fast. Models are built as in test_model.py (the project's yaml defaults plus overrides).
"""

import collections
import math

import pytest
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from recbole.utils import InputType

from recbole_mamba.bench import sampled_softmax
from recbole_mamba.data import fields
from recbole_mamba.errors import InputError
from recbole_mamba.model import GRU4RecAllPositions, RecMamba, SASRecSDPA, all_position_training
from recbole_mamba.quick_start import Config
from recbole_mamba.quick_start.trainer import SparseDenseOptimizer, trainer_class
from test_model import N_ITEMS, make_batch, make_model

SPARSE_READY = {"learner": "adam", "weight_decay": 0.0, "clip_grad_norm": None}  # RecBole's defaults


def build(model_class, dataset, **options):
    """A plugin model built from the project's Config, tiny, on ``dataset`` (anything with ``num``/``counter``)."""
    config = Config(model=model_class, dataset="ml-100k", config_dict={
        "MAX_ITEM_LIST_LENGTH": 16, "hidden_size": 16, "embedding_size": 16, "inner_size": 32, "n_layers": 1,
        "n_heads": 1, "d_state": 4, **options})
    config["device"] = torch.device("cpu")
    torch.manual_seed(0)
    return model_class(config, dataset)


def direct_sampled_softmax(hidden, weight, positives, negatives, log_q):
    """Row by row, in float64: -log softmax of the positive over it and the corrected negatives other than it."""
    losses = []
    for h, positive in zip(hidden.double(), positives):
        logits = [h @ weight[positive].double()]
        logits += [h @ weight[n].double() - (q + math.log(len(negatives)))
                   for n, q in zip(negatives.tolist(), log_q.double()) if n != positive]
        losses.append(-torch.log_softmax(torch.stack(logits), 0)[0])
    return torch.stack(losses)


def test_sampled_softmax_matches_a_direct_computation_with_collisions():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(9, 8, generator=generator, requires_grad=True)
    weight = torch.randn(N_ITEMS, 8, generator=generator, requires_grad=True)
    positives = torch.randint(1, N_ITEMS, (9,), generator=generator)
    negatives = torch.cat([positives[:3], torch.randint(1, N_ITEMS, (5,), generator=generator)])  # 3 collisions
    log_q = torch.rand(8, generator=generator).log()
    got = all_position_training.sampled_softmax_loss(hidden, weight[positives], positives, weight[negatives],
                                                     negatives, log_q)
    want = direct_sampled_softmax(hidden, weight, positives, negatives, log_q)
    torch.testing.assert_close(got, want.float())
    upstream = torch.rand(9, generator=generator)
    grads = torch.autograd.grad((got * upstream).sum(), (hidden, weight))
    expected = torch.autograd.grad((want * upstream.double()).sum(), (hidden, weight))
    for grad, grad_want in zip(grads, expected):
        torch.testing.assert_close(grad, grad_want.float())


def fixed_negatives(model, negatives, log_q):
    model.sample_negatives = lambda: (negatives, log_q)


@pytest.mark.parametrize("seq2seq", [False, True], ids=["last", "seq2seq"])
def test_model_sampled_softmax_loss_and_gradients(seq2seq):
    model = make_model(loss_type="sampled_softmax", num_negatives=6).eval()
    negatives, log_q = torch.tensor([3, 7, 7, 12, 1, 29]), torch.full((6,), -math.log(N_ITEMS - 1))
    fixed_negatives(model, negatives, log_q)
    batch = make_batch(seq2seq=seq2seq)
    loss = model.calculate_loss(batch)
    if seq2seq:
        targets = batch[fields.TARGET_ITEM_LIST]
        hidden, positives = model.forward_all(batch["item_id_list"])[targets > 0], targets[targets > 0]
    else:
        hidden, positives = model.forward(batch["item_id_list"], batch["item_length"]), batch["item_id"]
    weight = model.item_embedding.weight
    want = direct_sampled_softmax(hidden, weight, positives, negatives, log_q).mean()
    torch.testing.assert_close(loss, want.float())
    parameters = list(model.parameters())
    for grad, grad_want in zip(torch.autograd.grad(loss, parameters), torch.autograd.grad(want, parameters)):
        torch.testing.assert_close(grad, grad_want.float(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seq2seq", [False, True], ids=["last", "seq2seq"])
def test_bce_loss_and_gradients_match_a_direct_computation(seq2seq):
    model = make_model(loss_type="BCE").eval()
    batch = make_batch(seq2seq=seq2seq)
    loss = model.calculate_loss(batch)
    weight = model.item_embedding.weight
    if seq2seq:
        targets = batch[fields.TARGET_ITEM_LIST]
        valid = targets > 0
        hidden = model.forward_all(batch["item_id_list"])[valid]
        positives, negatives = targets[valid], batch[fields.NEG_ITEM_LIST][valid]
    else:
        hidden = model.forward(batch["item_id_list"], batch["item_length"])
        positives, negatives = batch["item_id"], batch["neg_item_id"]
    weight = weight.double()
    terms = [-torch.log(torch.sigmoid(h @ weight[p])) - torch.log(1 - torch.sigmoid(h @ weight[n]))
             for h, p, n in zip(hidden.double(), positives, negatives)]
    want = torch.stack(terms).mean()
    torch.testing.assert_close(loss, want.float())
    parameters = list(model.parameters())
    for grad, grad_want in zip(torch.autograd.grad(loss, parameters), torch.autograd.grad(want, parameters)):
        torch.testing.assert_close(grad, grad_want.float(), rtol=1e-4, atol=1e-6)


def test_uniform_negatives_and_their_log_probability():
    model = make_model(loss_type="sampled_softmax", num_negatives=4000)
    negatives, log_q = model.sample_negatives()
    assert negatives.min() >= 1 and negatives.max() <= N_ITEMS - 1
    assert len(set(negatives.tolist())) == N_ITEMS - 1  # every real item can be drawn, padding never
    torch.testing.assert_close(log_q, torch.full((4000,), -math.log(N_ITEMS - 1)))


class CountedItems:
    """A training split's item counts, as RecBole datasets give them (``counter``)."""

    def __init__(self, counts):
        self.counts = counts

    def num(self, field):
        return N_ITEMS

    def counter(self, field):
        return collections.Counter(self.counts)


def test_popularity_negatives_follow_the_training_counts():
    counts = {0: 50, 2: 1, 5: 3, 9: 6}  # item 0 (padding) is never drawn, whatever its count
    model = build(RecMamba, CountedItems(counts), loss_type="sampled_softmax", negative_distribution="popularity",
                  num_negatives=20000)
    torch.manual_seed(0)
    negatives, log_q = model.sample_negatives()
    frequency = collections.Counter(negatives.tolist())
    assert set(frequency) == {2, 5, 9}
    for item, share in ((2, 0.1), (5, 0.3), (9, 0.6)):
        assert abs(frequency[item] / 20000 - share) < 0.02
        torch.testing.assert_close(log_q[negatives == item], torch.full_like(log_q[negatives == item],
                                                                              math.log(share)))


def test_recbole_input_type_and_negatives_for_each_loss():
    """sampled_softmax draws its negatives itself (no RecBole sampler); BCE takes RecBole's, like BPR."""
    for loss_type, input_type, distribution in (("sampled_softmax", InputType.POINTWISE, "none"),
                                                ("BCE", InputType.PAIRWISE, "uniform")):
        for model in ("RecMamba", "SASRecSDPA", "GRU4RecAllPositions"):
            config = Config(model=model, dataset="ml-100k", config_dict={"loss_type": loss_type})
            assert config["MODEL_INPUT_TYPE"] == input_type and config["loss_type"] == loss_type
            assert config["train_neg_sample_args"]["distribution"] == distribution


@pytest.mark.parametrize("model_class", [SASRecSDPA, GRU4RecAllPositions])
@pytest.mark.parametrize("loss_type", ["sampled_softmax", "BCE"])
def test_baselines_train_with_the_new_losses(model_class, loss_type):
    model = build(model_class, CountedItems({}), loss_type=loss_type, num_negatives=8, sparse_item_embedding=True)
    assert model.item_embedding.sparse
    loss = model.calculate_loss(make_batch(seq2seq=True))
    loss.backward()
    assert torch.isfinite(loss) and model.item_embedding.weight.grad.is_sparse


@pytest.mark.parametrize("options, problem", [
    ({"loss_type": "CE"}, "CE reads every item"),
    ({"learner": "rmsprop"}, "no sparse optimizer"),
    ({"weight_decay": 0.1}, "weight_decay"),
    ({"clip_grad_norm": {"max_norm": 5.0}}, "clip_grad_norm"),
])
def test_sparse_embedding_needs_what_it_needs(options, problem):
    settings = {"loss_type": "BCE", **SPARSE_READY, **options}
    with pytest.raises(InputError, match=problem):
        make_model(sparse_item_embedding=True, **settings)
    auto = make_model(sparse_item_embedding="auto", sparse_item_embedding_min_items=1, **settings)
    assert not auto.item_embedding.sparse


def test_sparse_embedding_auto_follows_the_catalogue_size():
    for min_items, sparse in ((N_ITEMS, True), (N_ITEMS + 1, False)):
        model = make_model(loss_type="sampled_softmax", sparse_item_embedding="auto",
                           sparse_item_embedding_min_items=min_items, **SPARSE_READY)
        assert model.item_embedding.sparse is sparse


def trainer_for(model, tmp_path, learner="adam"):
    config = Config(model="RecMamba", dataset="ml-100k", config_dict={
        "learner": learner, "learning_rate": 0.01, "checkpoint_dir": str(tmp_path)})
    return trainer_class(config)(config, model)


def one_step(model, optimizer, batch):
    optimizer.zero_grad()
    model.calculate_loss(batch).backward()
    optimizer.step()


@pytest.mark.parametrize("learner", ["adam", "sgd", "adagrad"])
def test_sparse_and_dense_updates_agree(tmp_path, learner):
    """Same gradients; same parameters after a step. Later steps differ where they should: lazy Adam leaves the
    rows a step does not touch, and SparseAdam adds eps before the bias correction (Adam after it), so its first
    step equals Adam's once eps is scaled by sqrt(1 - beta2)."""
    models = {sparse: make_model(n_items=500, loss_type="BCE", sparse_item_embedding=sparse, dropout_prob=0.0,
                                 **{**SPARSE_READY, "learner": learner}) for sparse in (False, True)}
    optimizers = {sparse: trainer_for(model, tmp_path, learner).optimizer for sparse, model in models.items()}
    assert isinstance(optimizers[True], SparseDenseOptimizer)
    assert not isinstance(optimizers[False], SparseDenseOptimizer)
    if learner == "adam":
        group = optimizers[True].sparse.param_groups[0]
        group["eps"] *= math.sqrt(1 - group["betas"][1])
    batch = make_batch(seq2seq=True, n_items=500)
    for sparse, model in models.items():
        one_step(model, optimizers[sparse], batch)
    grad = models[True].item_embedding.weight.grad
    assert grad.is_sparse
    torch.testing.assert_close(grad.to_dense(), models[False].item_embedding.weight.grad)
    for (name, dense), sparse in zip(models[False].named_parameters(), models[True].parameters()):
        torch.testing.assert_close(sparse, dense, msg=name)
    assert len(grad.coalesce().indices()[0].unique()) < 500 // 2  # most rows untouched: they stay as they were


def test_sparse_optimizer_state_round_trips_through_a_checkpoint(tmp_path):
    model = make_model(loss_type="sampled_softmax", sparse_item_embedding=True, dropout_prob=0.0, **SPARSE_READY)
    trainer = trainer_for(model, tmp_path)
    batch = make_batch(seq2seq=True)
    torch.manual_seed(1)
    one_step(model, trainer.optimizer, batch)
    path = tmp_path / "optimizer.pth"
    torch.save({"model": model.state_dict(), "optimizer": trainer.optimizer.state_dict()}, path)
    saved = torch.load(path, weights_only=True)
    copy = make_model(loss_type="sampled_softmax", sparse_item_embedding=True, dropout_prob=0.0, **SPARSE_READY)
    copy.load_state_dict(saved["model"])
    copy_trainer = trainer_for(copy, tmp_path)
    copy_trainer.optimizer.load_state_dict(saved["optimizer"])
    for each, each_trainer in ((model, trainer), (copy, copy_trainer)):
        torch.manual_seed(2)  # the same sampled negatives
        one_step(each, each_trainer.optimizer, batch)
    for original, restored in zip(model.parameters(), copy.parameters()):
        torch.testing.assert_close(restored, original)
    assert trainer.optimizer.sparse.state_dict()["state"]  # the sparse optimizer's moments were saved too


def test_sampled_evaluation_encodes_each_sequence_once():
    model = make_model().eval()
    batch = make_batch(batch=3)
    repeats = 4  # RecBole repeats a user's row once per candidate
    candidates = torch.randint(1, N_ITEMS, (3 * repeats,))
    rows = {key: value.repeat_interleave(repeats, dim=0) for key, value in batch.interaction.items()}
    plain = Interaction({**rows, "item_id": candidates})
    grouped = Interaction({**rows, "item_id": candidates,
                           fields.SEQ_GROUP: torch.arange(3).repeat_interleave(repeats)})
    encoded = []
    model.forward_all = (lambda forward_all: lambda seq: encoded.append(len(seq)) or forward_all(seq))(
        model.forward_all)
    expected = model.predict(plain)
    torch.testing.assert_close(model.predict(grouped), expected)
    assert encoded == [3 * repeats, 3]


def test_sampled_softmax_trains_a_model_to_lower_loss():
    """Loss measured with the full softmax falls when training with the sampled one."""
    model = make_model(loss_type="sampled_softmax", num_negatives=8, dropout_prob=0.0)
    batch = make_batch(batch=8, seq2seq=True, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    targets = batch[fields.TARGET_ITEM_LIST]

    def full_ce():
        with torch.no_grad():
            hidden = model.forward_all(batch["item_id_list"])[targets > 0]
            return F.cross_entropy(hidden @ model.item_embedding.weight.T, targets[targets > 0]).item()

    before = full_ce()
    for _ in range(40):
        one_step(model, optimizer, batch)
    assert full_ce() < 0.7 * before


def test_sampled_softmax_accuracy_benchmark_quick(tmp_path):
    results = sampled_softmax.main(["--quick", "--out", str(tmp_path)])
    assert list(results["ml-100k"]) == list(sampled_softmax.LOSSES)
    assert all(0 <= summary["hit@10"][0] <= 1 for summary in results["ml-100k"].values())
    table = (tmp_path / "sampled_softmax_quick.md").read_text()
    assert "## ml-100k (real data)" in table and "| sampled_softmax, 256 popularity | " in table


@pytest.mark.parametrize("key, value", [("sparse_item_embedding", "yes"), ("sparse_item_embedding", 1),
                                        ("negative_distribution", "zipf"), ("num_negatives", 0),
                                        ("loss_type", "hinge"), ("eval_slice_logits", -1)])
def test_new_options_are_checked_before_a_run(key, value):
    with pytest.raises(InputError, match=key):
        Config(model="SASRecSDPA", dataset="ml-100k", config_dict={key: value})
