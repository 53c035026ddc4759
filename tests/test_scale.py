"""Training and evaluation at catalogue scale: full ranking in slices, sampled evaluation, sparse training end to end,
the paper's preset. Tiny sizes: CPU-fast."""

import pytest
import torch
from recbole.evaluator import Collector
from recbole.utils import init_seed

from conftest import REPO_ROOT, TINY_ML100K_ARGS
from recbole_mamba import data
from recbole_mamba.data import fields
from recbole_mamba.data.lifelong_dataloader import LifelongNegSampleEvalDataLoader
from recbole_mamba.quick_start import Config, run
from recbole_mamba.quick_start.trainer import SparseDenseOptimizer, top_k_in_slices, trainer_class

TOPK_METRICS = ["Hit", "NDCG", "MRR", "Recall", "Precision"]


def collected_top_k(scores, positive_u, positive_i, k):
    """RecBole's Collector's ``rec.topk`` (what the top-k metrics read) for one batch of scores."""
    collector = Collector({"eval_args": {"mode": "full"}, "topk": [k], "device": torch.device("cpu"),
                           "metrics": TOPK_METRICS})
    collector.eval_batch_collect(scores, None, positive_u, positive_i)
    return collector.get_data_struct().get("rec.topk")


@pytest.mark.parametrize("items_per_slice", [1, 7, 40, 101, 1000])
def test_top_k_in_slices_ranks_like_the_full_matrix(items_per_slice):
    generator = torch.Generator().manual_seed(0)
    rows, items, k = 6, 101, 10
    scores = torch.randn(rows, items, generator=generator)
    # several positives per row, one of them in the history (scored -inf, as RecBole does), one row with item 0
    positive_u = torch.tensor([0, 0, 0, 1, 2, 3, 3, 4, 5])
    positive_i = torch.tensor([5, 17, 99, 3, 0, 42, 43, 8, 100])
    history = (torch.tensor([0, 1, 1, 3, 5, 5]), torch.tensor([6, 3, 50, 7, 1, 2]))
    scores[0, 17] = scores[0].max() + 1  # a positive at the top
    full = scores.clone()
    full[:, 0] = -float("inf")
    full[history] = -float("inf")
    slices = ((start, scores[:, start:start + items_per_slice].clone()) for start in range(0, items, items_per_slice))
    compact, columns = top_k_in_slices(slices, rows, k, positive_u, positive_i, history)
    assert compact.shape == (rows, k + 3)
    want = collected_top_k(full, positive_u, positive_i, k)
    assert want[:, :k].sum() > 0  # some positives ranked in the top k: the comparison can fail
    assert torch.equal(collected_top_k(compact, positive_u, columns, k), want)


@pytest.fixture
def tiny_run(tmp_path):
    """Config, loaders and an untrained RecMamba on ML-100k's 138 users with 20-25 ratings."""

    def build(*args):
        config = Config(model="RecMamba", dataset="ml-100k", cmd_args=[
            *TINY_ML100K_ARGS, f"--checkpoint_dir={tmp_path / 'saved'}", "--d_state=4", "--show_progress=False",
            *args])
        init_seed(config["seed"], config["reproducibility"])
        dataset = data.create_dataset(config)
        loaders = data.data_preparation(config, dataset)
        model = config.model_class(config, loaders[0]._dataset)
        return config, loaders, model

    return build


def test_sliced_full_ranking_equals_recbole_full_ranking(tiny_run):
    config, (train_data, _, test_data), model = tiny_run("--topk=[10,200]", "--metrics=['Hit','NDCG','MRR','Recall']")
    calls = []
    model.full_sort_scores = (lambda scores: lambda *args: calls.append(args[1]) or scores(*args))(
        model.full_sort_scores)
    results = {}
    for slice_logits in (1 << 40, 5000):  # RecBole's one matrix; slices of 5000 // batch rows items
        config["eval_slice_logits"] = slice_logits
        trainer = trainer_class(config)(config, model)
        results[slice_logits] = trainer.evaluate(test_data, load_best_model=False)
    assert calls and all(items < test_data._dataset.item_num for items in calls)
    assert results[5000] == results[1 << 40] and results[5000]["hit@200"] > 0
    config["metrics"] = ["Hit", "GAUC"]  # needs every rank: RecBole's path
    calls.clear()
    trainer = trainer_class(config)(config, model)
    trainer.eval_collector.data_collect(train_data)
    trainer.evaluate(test_data, load_best_model=False)
    assert not calls


def test_uni1000_evaluation_on_the_lifelong_dataset(tiny_run):
    config, (_, _, test_data), model = tiny_run(
        "--train_mode=seq2seq", "--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'group_by': 'user', "
        "'mode': 'uni1000'}")
    assert isinstance(test_data, LifelongNegSampleEvalDataLoader)
    batch = next(iter(test_data))[0]
    users = len(batch[fields.SEQ_GROUP].unique())
    assert len(batch) == users * 1001
    encoded = []
    model.forward_all = (lambda forward_all: lambda seq: encoded.append(len(seq)) or forward_all(seq))(
        model.forward_all)
    result = trainer_class(config)(config, model).evaluate(test_data, load_best_model=False)
    assert 0 <= result["hit@10"] <= 1 and sum(encoded) == len(test_data._dataset)  # one encoding per user


@pytest.mark.parametrize("loss_type", ["sampled_softmax", "BCE"])
def test_sparse_training_runs_end_to_end_with_checkpoints(tmp_path, loss_type):
    result = run("RecMamba", "ml-100k", cmd_args=[
        *TINY_ML100K_ARGS, "--train_mode=seq2seq", f"--loss_type={loss_type}", "--num_negatives=32",
        "--sparse_item_embedding=True", "--eval_slice_logits=20000", "--d_state=4",
        f"--checkpoint_dir={tmp_path / 'saved'}"])
    assert 0 <= result["test_result"]["hit@10"] <= 1
    checkpoint = torch.load(next((tmp_path / "saved").glob("RecMamba-*.pth")), weights_only=True)
    assert set(checkpoint["optimizer"]) == {"dense", "sparse"}


def test_sparse_model_gets_the_sparse_dense_optimizer(tiny_run):
    config, _, model = tiny_run("--loss_type=sampled_softmax", "--sparse_item_embedding=True")
    optimizer = trainer_class(config)(config, model).optimizer
    assert isinstance(optimizer, SparseDenseOptimizer)
    assert [p for group in optimizer.sparse.param_groups for p in group["params"]] == [model.item_embedding.weight]
    assert len(optimizer.param_groups) == 2


def test_paper_preset():
    config = Config(model="RecMamba", dataset="kuairand",
                    config_file_list=[str(REPO_ROOT / "properties" / "dataset" / "kuairand-paper.yaml")])
    assert (config["block_style"], config["hidden_size"], config["num_layers"], config["dropout_prob"]) == (
        "paper", 50, 2, 0.5)
    assert (config["learning_rate"], config["train_batch_size"], config["MAX_ITEM_LIST_LENGTH"]) == (0.0005, 128, 2048)
    assert config["loss_type"] == "BCE" and config["train_neg_sample_args"]["sample_num"] == 1
    assert config["eval_args"]["mode"] == {"valid": "uni1000", "test": "uni1000"}
    assert config["valid_neg_sample_args"] == {"distribution": "uniform", "sample_num": 1000}
    assert config["train_mode"] == "seq2seq" and config["data_path"] == str(REPO_ROOT / "dataset" / "kuairand")
