"""The plugin's baseline variants match RecBole's originals and train on every position of seq2seq batches."""

import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.model.sequential_recommender import GRU4Rec, SASRec

from recbole_mamba.data import fields
from recbole_mamba.data.item_count import ItemCount
from recbole_mamba.model import GRU4RecAllPositions, SASRecSDPA
from recbole_mamba.quick_start import Config

N_ITEMS, LENGTH = 30, 12


def build(model_class, **options):
    config = Config(model=model_class, dataset="ml-100k",
                    config_dict={"MAX_ITEM_LIST_LENGTH": LENGTH, "hidden_size": 16, "embedding_size": 16,
                                 "inner_size": 32, "n_layers": 2, "n_heads": 2, **options})
    config["device"] = torch.device("cpu")
    torch.manual_seed(0)
    return model_class(config, ItemCount(N_ITEMS))


def right_padded_batch():
    generator = torch.Generator().manual_seed(0)
    sequences = torch.randint(1, N_ITEMS, (4, LENGTH), generator=generator)
    lengths = torch.tensor([LENGTH, 5, 1, 9])
    sequences[torch.arange(LENGTH) >= lengths[:, None]] = 0
    return sequences, lengths


@pytest.mark.parametrize("variant, original", [(SASRecSDPA, SASRec), (GRU4RecAllPositions, GRU4Rec)])
def test_variant_matches_recbole_original(variant, original):
    reference, model = build(original).eval(), build(variant).eval()
    model.load_state_dict(reference.state_dict())
    sequences, lengths = right_padded_batch()
    torch.testing.assert_close(model(sequences, lengths), reference(sequences, lengths), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.full_sort_predict(Interaction({model.ITEM_SEQ: sequences,
                                                                    model.ITEM_SEQ_LEN: lengths})),
                               reference.full_sort_predict(Interaction({model.ITEM_SEQ: sequences,
                                                                        model.ITEM_SEQ_LEN: lengths})),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [SASRecSDPA, GRU4RecAllPositions])
def test_variant_trains_every_position_of_a_seq2seq_batch(variant):
    model = build(variant).eval()
    sequences, lengths = right_padded_batch()
    targets = torch.roll(sequences, -1, dims=1)
    targets[torch.arange(LENGTH) >= (lengths - 1)[:, None]] = 0
    batch = Interaction({model.ITEM_SEQ: sequences, model.ITEM_SEQ_LEN: lengths, fields.TARGET_ITEM_LIST: targets,
                         model.POS_ITEM_ID: targets[:, 0]})
    loss = model.calculate_loss(batch)
    hidden = model.forward_all(sequences)
    valid = targets > 0
    expected = torch.nn.functional.cross_entropy(hidden[valid] @ model.item_embedding.weight.T, targets[valid])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.item_embedding.weight.grad.abs().sum() > 0
