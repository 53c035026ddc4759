"""Multi-process training on torch.distributed (gloo on CPU): sharded data, equal metrics, run.py --nproc=2."""

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import TINY_ML100K_ARGS
from recbole_mamba.errors import InputError

# The tiny ML-100k budget on 100 users (an even number: each process evaluates 50, none twice), seq2seq windows.
TINY = [*[arg for arg in TINY_ML100K_ARGS if not arg.startswith("--user_inter_num_interval=")],
        "--user_inter_num_interval=[20,24)", "--d_state=4", "--train_mode=seq2seq"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loaders_and_valid_result(config):
    """The training examples (user, length, items) of one epoch, the validation result of a fresh RecMamba, and its
    trainer and training data."""
    from recbole.utils import init_seed

    from recbole_mamba import data
    from recbole_mamba.model import RecMamba
    from recbole_mamba.quick_start.trainer import trainer_class

    train_data, valid_data, _ = data.data_preparation(config, data.create_dataset(config))
    list_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    examples = [(user, length, tuple(items)) for batch in train_data
                for user, length, items in zip(batch[config["USER_ID_FIELD"]].tolist(),
                                                batch[config["ITEM_LIST_LENGTH_FIELD"]].tolist(),
                                                batch[list_field].tolist())]
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])  # as the pipeline: one seed per rank
    trainer = trainer_class(config)(config, RecMamba(config, train_data._dataset))
    return examples, dict(trainer.evaluate(valid_data, load_best_model=False)), trainer, train_data


def rank_worker(local_rank, port, queue):
    from recbole_mamba.quick_start import Config

    config = Config("RecMamba", "ml-100k", cmd_args=TINY, config_dict={
        "nproc": 2, "world_size": 2, "ip": "127.0.0.1", "port": port, "offset": 0, "local_rank": local_rank})
    assert dist.get_backend() == "gloo" and str(config["device"]) == "cpu" and not config["single_spec"]
    examples, result, trainer, train_data = loaders_and_valid_result(config)
    before = parameters(trainer.model)
    trainer.fit(train_data, saved=False, verbose=False)  # one epoch, gradients averaged over both processes
    queue.put((local_rank, examples, result, before, parameters(trainer.model)))
    dist.destroy_process_group()


def parameters(model):
    """All parameters as one numpy vector (a tensor would travel by shared memory, gone when the process ends)."""
    return torch.cat([parameter.detach().flatten() for parameter in model.parameters()]).numpy()


def test_two_processes_share_each_epoch_and_evaluate_as_one(checkpoint_dir):
    from recbole_mamba.quick_start import Config

    queue = mp.get_context("spawn").SimpleQueue()
    processes = mp.spawn(rank_worker, args=(free_port(), queue), nprocs=2, join=False)
    outcomes = []
    while len(outcomes) < 2:  # read while they run (a full pipe blocks their put); join raises if one failed
        processes.join(timeout=1)
        while not queue.empty():
            outcomes.append(queue.get())
    processes.join()
    ranks = {rank: outcome for rank, *outcome in outcomes}
    one_examples, one_result, *_ = loaders_and_valid_result(Config("RecMamba", "ml-100k", cmd_args=TINY))

    (first, first_result, first_before, first_after), (second, second_result, _, second_after) = ranks[0], ranks[1]
    assert len(first) == len(second)  # the same number of batches: DDP's gradient averaging stays in step
    assert set(first) | set(second) == set(one_examples) and len(set(one_examples)) == len(one_examples)
    assert len(first) + len(second) - len(one_examples) < 2  # each window once (+ at most one repeat to even up)
    assert first_result == second_result == one_result  # validation users split between ranks, metrics gathered
    assert not np.array_equal(first_before, first_after)  # trained, and the processes stay one model:
    assert np.allclose(first_after, second_after, rtol=0, atol=1e-6)


def test_dist_backend_is_checked():
    from recbole_mamba.quick_start import Config

    with pytest.raises(InputError, match="^dist_backend: unknown value 'mpi'; choose one of gloo, nccl"):
        Config("RecMamba", "ml-100k", config_dict={"dist_backend": "mpi"})
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="^dist_backend: 'nccl' needs CUDA GPUs"):
            Config("RecMamba", "ml-100k", config_dict={"dist_backend": "nccl"})
    with pytest.raises(InputError, match="^nproc: 0 is not a positive integer"):
        Config("RecMamba", "ml-100k", cmd_args=["--nproc=0"])


def test_run_script_trains_with_two_processes(capsys, checkpoint_dir, tmp_path):
    from recbole_mamba.quick_start.cli import main

    assert main(["--model=RecMamba", *TINY, "--nproc=2", f"--port={free_port()}",
                 f"--checkpoint_dir={checkpoint_dir}"]) == 0, capsys.readouterr().err[-3000:]
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("test result (RecMamba on ml-100k): recall@10=")
    logs = [path.read_text() for path in (tmp_path / "log" / "RecMamba").glob("*.log")]
    assert sum("distributed training: backend gloo, world_size = 2, rank 0" in log for log in logs) == 1
    assert len(list(checkpoint_dir.glob("RecMamba-*.pth"))) == 1  # written by the first process only
