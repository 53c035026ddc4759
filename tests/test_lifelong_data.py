"""Lifelong dataset and dataloaders: equivalence with stock RecBole, seq2seq windows, memory, benchmark smoke."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import recbole
import recbole.data
import torch
import yaml
from recbole.config import Config
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

import recbole_mamba.data as lifelong
from recbole_mamba.data import fields
from recbole_mamba.data.lifelong_dataset import LifelongSequentialDataset
from recbole_mamba.data.synthetic_lifelong import write_synthetic_inter
from recbole_mamba.locations import properties_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
ML100K = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
# RecBole's own Config (used here, as by stock RecBole) does not read the project's yaml: the lifelong keys come from it.
OVERALL_YAML = yaml.safe_load((properties_dir() / "overall.yaml").read_text())
LIFELONG_DEFAULTS = {key: OVERALL_YAML[key] for key in lifelong.LIFELONG_ARGUMENTS}
SASREC_TINY = {
    "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1, "epochs": 1,
    "train_batch_size": 512, "eval_batch_size": 4096, "metric_decimal_place": 12,
    "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "topk": [10, 200],
}


@pytest.fixture(autouse=True)
def no_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])  # RecBole's Config parses sys.argv


@pytest.fixture
def one_torch_thread():
    """Tiny models train several times faster on one thread when other processes share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_inter(folder, name, header, rows):
    path = Path(folder) / name
    path.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(map(str, row)) for row in rows]
    (path / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return Path(folder)


@pytest.fixture
def ml_tiny(tmp_path):
    """The first 30 users of RecBole's bundled ML-100k (in file order), with rating and timestamp: ~5.7k rows."""
    lines = ML100K.read_text().splitlines()
    users, rows = [], []
    for line in lines[1:]:
        user = line.split("\t")[0]
        if user not in users:
            if len(users) == 30:
                continue
            users.append(user)
        rows.append(line.split("\t"))
    return write_inter(tmp_path / "data", "mltiny", lines[0].split("\t"), rows)


def make_config(data_path, dataset, model="SASRec", **overrides):
    config_dict = {
        "data_path": str(data_path), "checkpoint_dir": str(Path(data_path).parent / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 20, "train_neg_sample_args": None, "use_gpu": False,
        "show_progress": False, "state": "ERROR", "reproducibility": True, "seed": 2020, **LIFELONG_DEFAULTS,
    }
    config_dict.update(SASREC_TINY)
    config_dict.update(overrides)
    return Config(model=model, dataset=dataset, config_dict=config_dict)


def build(module, config):
    init_seed(config["seed"], config["reproducibility"])
    dataset = module.create_dataset(config)
    return dataset, module.data_preparation(config, dataset)


def all_examples(loader):
    return loader._dataset[np.arange(len(loader._dataset))]


def assert_same_interaction(expected, actual):
    assert list(expected.columns) == list(actual.columns)
    for name in expected.columns:
        assert expected[name].dtype == actual[name].dtype, name
        assert torch.equal(expected[name], actual[name]), name


def fit_and_test(config, loaders):
    train_data, valid_data, test_data = loaders
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data._dataset)
    trainer = Trainer(config, model)  # stock RecBole; one epoch: the model after it is the best one
    _, valid_result = trainer.fit(train_data, valid_data, saved=False, verbose=False, show_progress=False)
    return dict(valid_result), dict(trainer.evaluate(test_data, load_best_model=False))


# ------------------------------------------------------------------------------------ equivalence with RecBole
@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="CE-full"),
        pytest.param(
            {"loss_type": "BPR", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
             "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"}},
            id="BPR-uni100",
        ),
    ],
)
def test_prefix_mode_matches_recbole(ml_tiny, overrides, one_torch_thread):
    config = make_config(ml_tiny, "mltiny", train_mode="prefix", **overrides)
    stock_dataset, stock = build(recbole.data, config)
    ours_dataset, ours = build(lifelong, make_config(ml_tiny, "mltiny", train_mode="prefix", **overrides))
    assert type(stock_dataset) is SequentialDataset and type(ours_dataset) is LifelongSequentialDataset

    # identical examples, in the same order, for every split
    for stock_loader, our_loader in zip(stock, ours):
        assert len(stock_loader._dataset) == len(our_loader._dataset)
        assert_same_interaction(stock_loader._dataset.inter_feat, all_examples(our_loader))
    # RecBole's dataset API on the train split
    assert stock[0]._dataset.item_counter == ours[0]._dataset.item_counter
    assert (stock[0]._dataset.inter_matrix().toarray() == ours[0]._dataset.inter_matrix().toarray()).all()

    # identical first-epoch batches (the loaders' generators are seeded alike), negatives included
    init_seed(config["seed"], True)
    stock_batches = list(stock[0])
    init_seed(config["seed"], True)
    our_batches = list(ours[0])
    assert len(stock_batches) == len(our_batches) > 1
    for expected, actual in zip(stock_batches, our_batches):
        assert_same_interaction(expected, actual)

    # identical metrics after one epoch of SASRec (the loaders' generators advanced alike above)
    stock_valid, stock_test = fit_and_test(config, stock)
    our_valid, our_test = fit_and_test(ours_dataset.config, ours)
    assert stock_valid.keys() == our_valid.keys() and stock_test.keys() == our_test.keys()
    for key in stock_valid:
        assert our_valid[key] == pytest.approx(stock_valid[key], abs=1e-9), key
        assert our_test[key] == pytest.approx(stock_test[key], abs=1e-9), key
    assert any(value > 0 for value in stock_test.values())


@pytest.mark.parametrize("split", ["valid_and_test", "valid_only", "test_only"])
def test_prefix_examples_match_recbole_with_ties_and_extra_fields(tmp_path, split):
    """Shuffled rows, heavy timestamp ties, users of 1-40 items, extra token and float fields, every LS mode."""
    rng = np.random.default_rng(7)
    rows = []
    for user, count in enumerate([1, 2, 3, 4, 5, 8, 13, 40, 1, 3]):
        for _ in range(count):
            rows.append((f"u{user}", f"i{rng.integers(30)}", int(rng.integers(4)), f"c{rng.integers(3)}",
                         round(float(rng.random()), 3)))
    rng.shuffle(rows)
    header = ["user_id:token", "item_id:token", "timestamp:float", "cat:token", "score:float"]
    data_path = write_inter(tmp_path / "data", "ties", header, rows)
    settings = {"load_col": None, "MAX_ITEM_LIST_LENGTH": 6,
                "eval_args": {"split": {"LS": split}, "order": "TO", "mode": "full"}}
    _, stock = build(recbole.data, make_config(data_path, "ties", **settings))
    _, ours = build(lifelong, make_config(data_path, "ties", **settings))
    for stock_loader, our_loader in zip(stock, ours):
        assert len(stock_loader._dataset) == len(our_loader._dataset)
        if len(stock_loader._dataset):
            assert_same_interaction(stock_loader._dataset.inter_feat, all_examples(our_loader))
    assert "cat_list" in all_examples(ours[0]).columns and "score_list" in all_examples(ours[0]).columns


def test_fast_loading_matches_recbole(ml_tiny):
    overrides = {"user_inter_num_interval": "[60,inf)", "item_inter_num_interval": "[3,inf)"}
    config = make_config(ml_tiny, "mltiny", **overrides)
    stock = SequentialDataset(config)
    ours = LifelongSequentialDataset(config)
    rows_in_file = len((ml_tiny / "mltiny" / "mltiny.inter").read_text().splitlines()) - 1
    assert 0 < len(ours.inter_feat) < rows_in_file  # the filters dropped users and items
    assert stock.inter_feat.equals(ours.inter_feat)
    assert stock.field2type == ours.field2type and stock.field2seqlen == ours.field2seqlen
    for field in ("user_id", "item_id"):
        assert (stock.field2id_token[field] == ours.field2id_token[field]).all()
        assert dict(stock.field2token_id[field]) == dict(ours.field2token_id[field])
    assert (stock.token2id("item_id", ["242", "302"]) == ours.token2id("item_id", ["242", "302"])).all()


def test_delegates_to_recbole(ml_tiny):
    dataset = lifelong.create_dataset(make_config(ml_tiny, "mltiny", lifelong_sequences=False))
    assert type(dataset) is SequentialDataset
    general = make_config(ml_tiny, "mltiny", model="BPR", train_neg_sample_args={"distribution": "uniform"},
                          eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "mode": "full"})
    dataset = lifelong.create_dataset(general)
    assert type(dataset) is Dataset
    train_data, _, _ = lifelong.data_preparation(general, dataset)
    assert type(train_data).__name__ == "TrainDataLoader"


# ------------------------------------------------------------------------------------- seq2seq on a toy history
@pytest.fixture
def toy(tmp_path):
    """User a: 12 items, b: 3, c: 1, d: 5; times interleave users; item tokens name user and position."""
    rows = []
    for user, count in (("a", 12), ("b", 3), ("c", 1), ("d", 5)):
        for i in range(count):
            rows.append((user, f"{user}{i + 1}", 10 * i + "abcd".index(user)))
    rows.sort(key=lambda row: row[2])
    return write_inter(tmp_path / "data", "toy", ["user_id:token", "item_id:token", "timestamp:float"], rows)


def toy_splits(data_path, **overrides):
    settings = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 4, "topk": [10]}
    settings.update(overrides)
    config = make_config(data_path, "toy", **settings)
    dataset, loaders = build(lifelong, config)
    return config, dataset, loaders


def tokens(dataset, ids):
    return [str(t) for t in dataset.id2token("item_id", ids[ids > 0].numpy())]


def windows(dataset, batch):
    """[(user, inputs, targets with '.' for no loss, last target)] in token space."""
    out = []
    for row in range(len(batch)):
        length = int(batch["item_length"][row])
        inputs = batch["item_id_list"][row]
        targets = batch[fields.TARGET_ITEM_LIST][row]
        assert (inputs[length:] == 0).all() and (targets[length:] == 0).all()
        shown = [tokens(dataset, t.view(1))[0] if t > 0 else "." for t in targets[:length]]
        out.append((str(dataset.id2token("user_id", int(batch["user_id"][row]))), tokens(dataset, inputs[:length]),
                    shown, tokens(dataset, batch["item_id"][row].view(1))[0]))
    return sorted(out)


@pytest.mark.parametrize(
    "stride, expected_a",
    [
        (4, [(["a1"], ["a2"]), (["a2", "a3", "a4", "a5"], ["a3", "a4", "a5", "a6"]),
             (["a6", "a7", "a8", "a9"], ["a7", "a8", "a9", "a10"])]),
        (2, [(["a1", "a2", "a3"], ["a2", "a3", "a4"]), (["a2", "a3", "a4", "a5"], [".", ".", "a5", "a6"]),
             (["a4", "a5", "a6", "a7"], [".", ".", "a7", "a8"]), (["a6", "a7", "a8", "a9"], [".", ".", "a9", "a10"])]),
        (3, [(["a1", "a2", "a3"], ["a2", "a3", "a4"]), (["a3", "a4", "a5", "a6"], [".", "a5", "a6", "a7"]),
             (["a6", "a7", "a8", "a9"], [".", "a8", "a9", "a10"])]),
    ],
)
def test_seq2seq_windows(toy, stride, expected_a):
    _, dataset, (train_data, valid_data, test_data) = toy_splits(toy, train_mode="seq2seq", seq2seq_stride=stride)
    train = train_data._dataset
    got = windows(dataset, train[np.arange(len(train))])
    expected = [("a", inputs, targets, targets[-1]) for inputs, targets in expected_a]
    expected += [("b", ["b1"], ["b2"], "b2"), ("d", ["d1", "d2"], ["d2", "d3"], "d3")]
    assert got == sorted(expected)
    # every training target (all but the first, valid and test items) gets loss exactly once
    trained = [t for _, _, targets, _ in got for t in targets if t != "."]
    assert sorted(trained) == sorted([f"a{i}" for i in range(2, 11)] + ["b2", "d2", "d3"])
    # batches from the loader carry the same fields
    batch = next(iter(train_data))
    assert batch[fields.TARGET_ITEM_LIST].shape == batch["item_id_list"].shape == (len(train), 4)
    assert fields.NEG_ITEM_LIST not in batch  # CE: no negatives


def test_eval_splits_truncate_and_do_not_leak(toy):
    for mode in ("prefix", "seq2seq"):
        _, dataset, (train_data, valid_data, test_data) = toy_splits(toy, train_mode=mode)
        valid = windows_plain(dataset, valid_data)
        test = windows_plain(dataset, test_data)
        # RecBole's leave-one-out: b (3 items) has a test item but no valid one; c (1 item) has neither
        assert valid == [("a", ["a7", "a8", "a9", "a10"], "a11"), ("d", ["d1", "d2", "d3"], "d4")]
        assert test == [("a", ["a8", "a9", "a10", "a11"], "a12"), ("b", ["b1", "b2"], "b3"),
                        ("d", ["d1", "d2", "d3", "d4"], "d5")]
        train = train_data._dataset[np.arange(len(train_data._dataset))]
        held_out = {"a11", "a12", "b3", "d4", "d5"}
        seen = set(tokens(dataset, train["item_id_list"].flatten())) | set(tokens(dataset, train["item_id"]))
        if mode == "seq2seq":
            seen |= set(tokens(dataset, train[fields.TARGET_ITEM_LIST].flatten()))
        assert seen and not seen & held_out


def windows_plain(dataset, loader):
    batch = loader._dataset[np.arange(len(loader._dataset))]
    return sorted(
        (str(dataset.id2token("user_id", int(batch["user_id"][r]))),
         tokens(dataset, batch["item_id_list"][r][: int(batch["item_length"][r])]),
         tokens(dataset, batch["item_id"][r].view(1))[0])
        for r in range(len(batch))
    )


def test_seq2seq_bpr_negatives_and_sampled_eval(toy):
    config, dataset, (train_data, valid_data, test_data) = toy_splits(
        toy, train_mode="seq2seq", seq2seq_stride=2, loss_type="BPR",
        train_neg_sample_args={"distribution": "uniform", "sample_num": 1},
        eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"},
    )
    batch = next(iter(train_data))
    targets, negatives = batch[fields.TARGET_ITEM_LIST], batch[fields.NEG_ITEM_LIST]
    assert negatives.shape == targets.shape
    assert ((negatives == 0) == (targets == 0)).all()
    assert ((negatives[targets > 0] >= 1) & (negatives[targets > 0] < dataset.item_num)).all()
    assert (negatives[targets > 0] != targets[targets > 0]).all()
    assert "neg_item_id" in batch.columns  # RecBole's pairwise negative for the standard target
    # a built-in model trains on a seq2seq batch (it uses the last position only) and evaluates with uni100
    init_seed(config["seed"], True)
    model = SASRec(config, train_data._dataset)
    assert torch.isfinite(model.calculate_loss(batch))
    eval_batch = next(iter(test_data))
    assert fields.SEQ_GROUP in eval_batch[0].columns
    assert len(eval_batch[0]) == 3 * 101
    result = Trainer(config, model).evaluate(test_data, load_best_model=False)
    assert set(result) >= {"hit@10", "ndcg@10"}


# ----------------------------------------------------------------------------------------------------- memory
def test_no_dense_n_by_l_tensor(tmp_path):
    """Long users (N = 12k, L = 2048): nothing held by the datasets or loaders is anywhere near N x L."""
    write_synthetic_inter(tmp_path / "data" / "longusers", users=4, interactions=12_000, items=500)
    for mode in ("prefix", "seq2seq"):
        config = make_config(tmp_path / "data", "longusers", train_mode=mode, MAX_ITEM_LIST_LENGTH=2048,
                             load_col={"inter": ["user_id", "item_id", "timestamp"]}, train_batch_size=64)
        dataset, (train_data, valid_data, test_data) = build(lifelong, config)
        n = len(dataset.inter_feat)
        assert n == 12_000
        tensors = [*dataset._flat.interaction.values()]
        for loader in (train_data, valid_data, test_data):
            tensors += [*loader._dataset.inter_feat.interaction.values()]
            tensors += [v for v in vars(loader._dataset).values() if isinstance(v, (torch.Tensor, np.ndarray))]
        assert max(t.numel() if isinstance(t, torch.Tensor) else t.size for t in tensors) <= n
        expected_examples = n - 3 * 4 if mode == "prefix" else None
        if expected_examples is not None:
            assert len(train_data._dataset) == expected_examples
        batch = next(iter(train_data))
        assert batch["item_id_list"].shape[1] == 2048
        assert (batch["item_length"] <= 2048).all() and (batch["item_length"] >= 1).all()
        test_batch = next(iter(test_data))[0]
        counts = np.diff(dataset._user_offsets)[test_batch["user_id"].numpy()]
        assert (test_batch["item_length"].numpy() == np.minimum(counts - 1, 2048)).all()  # the latest L items
        assert counts.max() > 2048


def test_memory_benchmark_smoke(tmp_path):
    out = tmp_path / "memory.md"
    done = subprocess.run(
        [sys.executable, "-m", "recbole_mamba.bench.memory", "--users", "20", "--interactions", "20000",
         "--workdir", str(tmp_path / "bench"), "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "SYNTHETIC" in text and "Peak RSS" in text and "1 epoch over train loader" in text
    assert (tmp_path / "bench" / "synthetic-lifelong" / "SYNTHETIC").is_file()


@pytest.mark.parametrize("model", ["GRU4Rec", "BERT4Rec", "NARM"])
@pytest.mark.parametrize("mode", ["prefix", "seq2seq"])
def test_recbole_models_train_and_evaluate(toy, model, mode, one_torch_thread):
    from recbole.utils import get_model

    config, dataset, (train_data, valid_data, test_data) = toy_splits(
        toy, model=model, train_mode=mode, MAX_ITEM_LIST_LENGTH=10, seq2seq_stride=5, embedding_size=8,
        hidden_size=8, inner_size=16, n_layers=1, n_heads=1,
        mask_ratio=0.6,  # BERT4Rec: seq2seq has 3 windows here; a batch without any masked item has a NaN loss
    )
    init_seed(config["seed"], True)
    trainer = Trainer(config, get_model(model)(config, train_data._dataset))
    trainer.fit(train_data, valid_data, saved=False, verbose=False, show_progress=False)
    result = trainer.evaluate(test_data, load_best_model=False)
    assert set(result) >= {"hit@10"}
