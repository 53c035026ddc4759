"""history_copy: repeat scores against a direct computation, the sliced CE and its gradients, full ranking, serving."""

import math

import pytest
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction

from recbole_mamba.data import fields
from recbole_mamba.model.history_copy import DISTANCE_BUCKETS, HistoryCopy, distance_bucket
from tests.test_model import MAX_LEN, N_ITEMS, make_batch, make_model


def test_distance_buckets_are_exact_then_two_per_doubling():
    distance = torch.tensor([0, 1, 7, 8, 11, 12, 15, 16, 22, 23, 32, 23170, 23171, 10**9])
    assert distance_bucket(distance).tolist() == [0, 1, 7, 8, 8, 9, 9, 10, 10, 11, 12, 30, 31, DISTANCE_BUCKETS - 1]


def direct_repeat_scores(copy, hidden, item_seq, positions, n_items):
    """c_t(v) = sum a_t[b(t - s)] + log(1 + sum exp(w_t[b(t - s)])) over s <= t with item_seq[s] == v, one by one,
    (a_t, w_t) = the context's linear map."""
    scores = torch.zeros(len(item_seq), n_items, dtype=torch.float64)
    weights = copy.bucket_weights.weight.detach().double()
    bias = copy.bucket_weights.bias.detach().double()
    for row, (items, t) in enumerate(zip(item_seq.tolist(), positions.tolist())):
        a, w = (hidden[row].detach().double() @ weights.T + bias).chunk(2)
        linear, count = [0.0] * n_items, [0.0] * n_items
        for s, item in enumerate(items[:t + 1]):
            if item:
                bucket = int(distance_bucket(torch.tensor(t - s)))
                linear[item] += a[bucket].item()
                count[item] += math.exp(w[bucket].item())
        scores[row] = torch.tensor(linear, dtype=torch.float64) + torch.log1p(torch.tensor(count, dtype=torch.float64))
    return scores


@pytest.fixture
def copy_and_history():
    torch.manual_seed(3)
    copy = HistoryCopy(4)
    randomize(copy)
    item_seq = torch.randint(0, 7, (5, 40))  # few items: many repeats, some padding (0) inside
    positions = torch.tensor([0, 9, 20, 39, 33])
    return copy, torch.randn(5, 4), item_seq, positions


def randomize(copy):
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.normal_(std=0.5)


def test_dense_scores_equal_the_direct_computation(copy_and_history):
    copy, hidden, item_seq, positions = copy_and_history
    expected = direct_repeat_scores(copy, hidden, item_seq, positions, 7)
    torch.testing.assert_close(copy.dense(hidden, item_seq, positions, 0, 7), expected.float())
    torch.testing.assert_close(copy.dense(hidden, item_seq, positions, 2, 5), expected[:, 2:5].float())
    assert torch.equal(copy.dense(hidden, item_seq, positions, 0, 7)[:, 0].detach(), torch.zeros(5))


def test_scores_at_items_equal_the_dense_ones(copy_and_history):
    copy, hidden, item_seq, positions = copy_and_history
    dense = copy.dense(hidden, item_seq, positions, 0, 7)
    items = torch.randint(0, 7, (5, 3))
    torch.testing.assert_close(copy.at(hidden, item_seq, positions, items), dense.gather(1, items))
    torch.testing.assert_close(copy.at(hidden, item_seq, positions, items[:, 0]), dense.gather(1, items[:, :1])[:, 0])


def copy_model(**options):
    model = make_model(history_copy=True, **options)
    randomize(model.history_copy)
    return model


NEGATIVES = torch.tensor([3, 7, 7, 12, 29, 1])  # shared sampled_softmax negatives (a repeat included)
NEGATIVE_LOG_Q = torch.full((6,), -math.log(N_ITEMS - 1))


def direct_seq2seq_loss(model, batch):
    """Mean loss over the positions with a target, every logit = h . e + the repeat scores of the dense matrix,
    without slices or checkpoints."""
    item_seq, targets = batch["item_id_list"], batch[fields.TARGET_ITEM_LIST]
    hidden = model.forward_all(item_seq)
    valid = targets > 0
    rows, positions = valid.nonzero(as_tuple=True)
    hidden, positives = hidden[valid], targets[valid]
    logits = hidden @ model.item_embedding.weight.T + model.history_copy.dense(hidden, item_seq[rows], positions, 0,
                                                                               N_ITEMS)
    if model.loss_type == "CE":
        return F.cross_entropy(logits, positives)
    positive = logits.gather(1, positives[:, None])[:, 0]
    if model.loss_type == "sampled_softmax":
        negative = (logits[:, NEGATIVES] - NEGATIVE_LOG_Q - math.log(len(NEGATIVES))).masked_fill(
            NEGATIVES == positives[:, None], -math.inf)
        return (torch.logsumexp(torch.cat([positive[:, None], negative], 1), 1) - positive).mean()
    negative = logits.gather(1, batch[fields.NEG_ITEM_LIST][valid][:, None])[:, 0]
    if model.loss_type == "BPR":
        return -torch.log(torch.sigmoid(positive - negative)).mean()
    return (F.softplus(-positive) + F.softplus(negative)).mean()


@pytest.mark.parametrize("loss_type", ["CE", "sampled_softmax", "BPR", "BCE"])
@pytest.mark.parametrize("slice_logits", [N_ITEMS * MAX_LEN * 100, MAX_LEN])  # one slice; one row per slice
def test_seq2seq_loss_and_gradients_equal_the_direct_computation(loss_type, slice_logits, monkeypatch):
    model = copy_model(ce_slice_logits=slice_logits, dropout_prob=0.0, loss_type=loss_type)
    monkeypatch.setattr(model, "sample_negatives", lambda: (NEGATIVES, NEGATIVE_LOG_Q))
    batch = make_batch(seq2seq=True)
    names, parameters = zip(*model.named_parameters())
    loss = model.calculate_loss(batch)
    grads = dict(zip(names, torch.autograd.grad(loss, parameters)))
    expected = direct_seq2seq_loss(model, batch)
    expected_grads = dict(zip(names, torch.autograd.grad(expected, parameters)))
    torch.testing.assert_close(loss, expected)
    for name in names:
        torch.testing.assert_close(grads[name], expected_grads[name])
    assert float(grads["history_copy.bucket_weights.weight"].abs().sum()) > 0  # the repeat scores learn


def test_sparse_item_embedding_trains_with_repeat_scores():
    model = copy_model(loss_type="sampled_softmax", sparse_item_embedding=True, learner="adam", weight_decay=0.0,
                       num_negatives=8)
    model.calculate_loss(make_batch(seq2seq=True)).backward()
    assert model.item_embedding.weight.grad.is_sparse
    assert float(model.history_copy.bucket_weights.weight.grad.abs().sum()) > 0


def test_shared_candidates_scores_equal_the_dense_ones(copy_and_history):
    copy, hidden, item_seq, positions = copy_and_history
    candidates = torch.tensor([5, 0, 2, 2, 6, 3])
    torch.testing.assert_close(copy.among(hidden, item_seq, positions, candidates),
                               copy.dense(hidden, item_seq, positions, 0, 7)[:, candidates])


def test_last_position_loss_is_the_ce_of_full_sort_predict():
    model = copy_model(dropout_prob=0.0).eval()
    batch = make_batch()
    expected = F.cross_entropy(model.full_sort_predict(batch), batch["item_id"])
    torch.testing.assert_close(model.calculate_loss(batch), expected)


def test_predict_and_sliced_full_ranking_equal_full_sort_predict():
    model = copy_model().eval()
    batch = make_batch()
    full = model.full_sort_predict(batch)
    torch.testing.assert_close(model.predict(batch), full.gather(1, batch["item_id"][:, None])[:, 0])
    sliced = torch.cat([scores for _, scores in model.full_sort_scores(batch, 7)], dim=1)
    torch.testing.assert_close(sliced, full)
    without = make_model().eval()
    without.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("history_copy")})
    repeat = (full - without.full_sort_predict(batch)).detach()
    assert float(repeat.abs().max()) > 0.1  # the repeat scores are really added


def test_served_state_scores_equal_full_sort_predict():
    model = copy_model().eval()
    batch = make_batch(length=MAX_LEN - 1)
    item_seq, lengths = batch["item_id_list"], batch["item_length"]
    new_items = torch.randint(1, N_ITEMS, (len(lengths),))
    _, state = model.prefill(item_seq, lengths)
    representation, state = model.step(state, new_items)
    served = model.score_items(representation, state["history"], state["length"])
    extended = Interaction({"item_id_list": F.pad(item_seq, (0, 1)).scatter(1, lengths[:, None], new_items[:, None]),
                            "item_length": lengths + 1})
    torch.testing.assert_close(served, model.full_sort_predict(extended), atol=1e-5, rtol=1e-5)


def test_repeat_scores_learn_to_recall_old_items():
    """Next item = the item seen 8 steps before, in sequences of 8 distinct random items repeated: the context alone
    cannot say which one, the repeat scores can. Trained a few steps, scored on new sequences."""
    torch.manual_seed(0)
    n_items, length = 200, 24

    def batch_of(users):
        seq = torch.stack([torch.randperm(n_items - 1)[:8] + 1 for _ in range(users)]).repeat(1, 4)
        inputs = {"item_id_list": seq[:, :length], "item_length": torch.full((users,), length),
                  fields.TARGET_ITEM_LIST: seq[:, 1:length + 1]}
        return seq[:, length], Interaction(inputs)

    train, (test_targets, test) = batch_of(64)[1], batch_of(256)
    hit_rates = {}
    for copy in (False, True):
        model = make_model(n_items=n_items, max_len=length, history_copy=copy)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(30):
            optimizer.zero_grad()
            model.train().calculate_loss(train).backward()
            optimizer.step()
        with torch.no_grad():
            top = model.eval().full_sort_predict(test).argmax(1)
        hit_rates[copy] = float((top == test_targets).float().mean())
    assert hit_rates[True] > 0.9 and hit_rates[False] < 0.2, hit_rates


def test_padding_beyond_the_longest_history_is_cut_before_the_model_runs(monkeypatch):
    model = make_model(dropout_prob=0.0)
    batch = make_batch(length=5, seq2seq=True)
    padded = Interaction({key: F.pad(value, (0, MAX_LEN - 5)) if value.dim() == 2 else value
                          for key, value in batch.interaction.items()})
    expected_loss, expected_output = model.calculate_loss(batch), model.forward(batch["item_id_list"],
                                                                                batch["item_length"])
    widths = []
    forward_all = model.forward_all
    monkeypatch.setattr(model, "forward_all",
                        lambda item_seq: widths.append(item_seq.shape[1]) or forward_all(item_seq))
    torch.testing.assert_close(model.calculate_loss(padded), expected_loss)
    torch.testing.assert_close(model.forward(padded["item_id_list"], padded["item_length"]), expected_output)
    assert widths == [5, 5]
