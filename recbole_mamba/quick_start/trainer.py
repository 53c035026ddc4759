"""RecBole's trainers with checkpoints a user can trust and a clear stop when training diverges.

:func:`trainer_class` wraps the trainer RecBole picks for a model (``recbole.utils.get_trainer``) in
:class:`SafeTraining`:

- checkpoints are written atomically (:func:`recbole_mamba.atomic_file.write_atomic`): a kill at any moment leaves
  the previous checkpoint intact;
- a checkpoint holds plain data only (the configuration as a dict of strings, numbers, lists and dicts, not a
  pickled ``Config``), so ``torch.load(path, weights_only=True)`` loads it;
- :func:`load_checkpoint` rejects a missing file, an unsafe (pickled-object) file, or one made for another model or
  dataset with one line; the trainer uses it to reload the best model and to resume;
- a checkpoint also holds the options the run's user set (``external_config``, from which
  :func:`recbole_mamba.quick_start.load_data_and_model` rebuilds the run) and the random generators' states (torch,
  CUDA, numpy, python, the training loader's shuffling), so that a resumed run draws what the uninterrupted run would;
- a model with sparse-gradient embeddings (``sparse_item_embedding``) gets a :class:`SparseDenseOptimizer`, whose
  cost per step follows the rows a step touches, not the catalogue;
- full ranking over a large catalogue is scored in slices of items, top k merged (:func:`top_k_in_slices`), so its
  memory stays bounded (``eval_slice_logits``);
- a NaN or infinite loss stops training with :class:`TrainingDiverged`, naming the epoch, the batch and the last
  good checkpoint;
- in multi-process training, every process uses the first process's checkpoint file name, and waits for it to be
  written before loading the best model.
"""

import enum
import math
import pickle
import random

import numpy as np
import torch
from recbole.utils import get_trainer, set_color

from recbole_mamba.atomic_file import write_atomic
from recbole_mamba.errors import InputError


class TrainingDiverged(InputError):
    """The training loss became NaN or infinite."""


def plain(value):
    """``value`` as data that ``torch.load(weights_only=True)`` accepts: dicts, lists, str, numbers, bool, None."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # devices, classes, paths


def load_checkpoint(path, config=None, device="cpu"):
    """Load a checkpoint written by :class:`SafeTraining` with ``weights_only=True``.

    With ``config``, a checkpoint made for another model or dataset is an :class:`InputError`.
    """
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "no such checkpoint file", "give the path of a .pth file saved by a run") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(path, f"not a checkpoint that loads safely ({first_line})",
                         "use a checkpoint saved by recbole-mamba (stock RecBole's pickle their Config); retrain "
                         "if this file was cut short") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "config" not in checkpoint:
        raise InputError(path, "not a recbole-mamba checkpoint (no state_dict and config)",
                         "give the path of a .pth file saved by a run")
    if config is not None:
        made_for = (checkpoint["config"].get("model"), checkpoint["config"].get("dataset"))
        wanted = (config["model"], config["dataset"])
        if made_for != wanted:
            raise InputError(path, f"made for model {made_for[0]} on dataset {made_for[1]}, not {wanted[0]} on "
                             f"{wanted[1]}", f"use a checkpoint of {wanted[0]} on {wanted[1]}, or run with "
                             f"--model={made_for[0]} --dataset={made_for[1]}")
    return checkpoint


def _rng_states(train_data):
    """The states of every random generator training draws from, as tensors and plain data."""
    numpy_state = np.random.get_state()  # (name, 624 uint32 keys, position, has_gauss, cached_gaussian)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *plain(numpy_state[2:])],
        "python": plain(random.getstate()),
        "loader": train_data.generator.get_state(),
    }


def _restore_rng_states(states, train_data):
    """Set the generators to ``states`` (from :func:`_rng_states`)."""
    torch.set_rng_state(states["torch"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), *rest))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    train_data.generator.set_state(states["loader"].cpu())


# learner -> the optimizer that updates sparse-gradient parameters (embedding rows a step touches) in its place
SPARSE_OPTIMIZERS = {"adam": torch.optim.SparseAdam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}


class SparseDenseOptimizer:
    """The configured learner for the dense parameters and its sparse counterpart (:data:`SPARSE_OPTIMIZERS`) for
    sparse-gradient embeddings, stepped, zeroed, saved and loaded as one optimizer."""

    def __init__(self, dense, sparse):
        self.dense, self.sparse = dense, sparse

    @property
    def param_groups(self):
        return self.dense.param_groups + self.sparse.param_groups

    def zero_grad(self, set_to_none=True):
        self.dense.zero_grad(set_to_none=set_to_none)
        self.sparse.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = self.dense.step(closure)
        self.sparse.step()
        return loss

    def state_dict(self):
        return {"dense": self.dense.state_dict(), "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state):
        self.dense.load_state_dict(state["dense"])
        self.sparse.load_state_dict(state["sparse"])


def top_k_in_slices(score_slices, rows, k, positive_u, positive_i, history_index=None):
    """Full ranking from slices of the (rows, items) score matrix, as a (rows, k + P) matrix ranked alike.

    ``score_slices`` yields (first item id, scores (rows, slice)); item 0 and ``history_index`` (rows, items) are
    masked as RecBole's ``_full_sort_batch_eval`` does. Returns (compact scores, positive columns): columns 0..k-1
    hold each row's top k, merged slice by slice; a positive outside them gets a column of its own after them (P:
    the most positives of a row). Top-k metrics of the compact matrix with ``positive_u`` and the returned columns
    equal those of the full matrix with ``positive_i``.
    """
    index_device, top_scores = positive_i.device, None
    history_u, history_i = (positive_u[:0], positive_i[:0]) if history_index is None else history_index
    for start, scores in score_slices:
        if top_scores is None:  # computed where the scores are, in their dtype
            device = scores.device
            positive_u, positive_i = positive_u.to(device), positive_i.to(device)
            order = torch.argsort(history_i.to(device))
            history_u, history_i = history_u.to(device)[order], history_i.to(device)[order]
            top_scores = torch.full((rows, k), -math.inf, dtype=scores.dtype, device=device)
            top_items = torch.zeros((rows, k), dtype=torch.long, device=device)
            positive_scores = torch.full(positive_i.shape, -math.inf, dtype=scores.dtype, device=device)
        stop = start + scores.shape[1]
        if start == 0:
            scores[:, 0] = -math.inf
        first, last = torch.searchsorted(history_i, torch.tensor([start, stop], device=device)).tolist()
        scores[history_u[first:last], history_i[first:last] - start] = -math.inf
        inside = (positive_i >= start) & (positive_i < stop)
        positive_scores[inside] = scores[positive_u[inside], positive_i[inside] - start]
        values, index = scores.topk(min(k, scores.shape[1]), dim=1)
        top_scores, pick = torch.cat([top_scores, values], dim=1).topk(k, dim=1)
        top_items = torch.cat([top_items, index + start], dim=1).gather(1, pick)
    in_top = top_items[positive_u] == positive_i[:, None]
    found = in_top.any(dim=1)
    counts = torch.bincount(positive_u, minlength=rows)
    by_row = torch.argsort(positive_u, stable=True)
    rank = torch.empty_like(by_row)
    rank[by_row] = torch.arange(len(by_row), device=device) - (counts.cumsum(0) - counts)[positive_u[by_row]]
    columns = torch.where(found, in_top.to(torch.int8).argmax(dim=1), k + rank)
    compact = torch.full((rows, k + int(counts.max())), -math.inf, dtype=top_scores.dtype, device=device)
    compact[:, :k] = top_scores
    compact[positive_u[~found], columns[~found]] = positive_scores[~found]
    return compact, columns.to(index_device)


class SafeTraining:
    """Mixin for a RecBole trainer: atomic plain-data checkpoints, resuming, and a one-line stop on divergence."""

    _epoch = _batch = 0
    _saved_epoch = None
    _train_data = None  # the loader being fitted: its shuffling generator is checkpointed
    _valid_result = None  # the latest validation result: the best one when a checkpoint is saved after validation
    _resumed_rng = None  # the generators' states to restore when fit starts

    def __init__(self, config, model):
        super().__init__(config, model)
        if not config["single_spec"]:  # RecBole names the file by each process's clock
            names = [self.saved_model_file]
            torch.distributed.broadcast_object_list(names, src=0)
            self.saved_model_file = names[0]

    def fit(self, train_data, *args, **kwargs):
        self._train_data = train_data
        if self._resumed_rng is not None:
            _restore_rng_states(self._resumed_rng, train_data)
            self._resumed_rng = None
        return super().fit(train_data, *args, **kwargs)

    def _valid_epoch(self, *args, **kwargs):
        score, self._valid_result = super()._valid_epoch(*args, **kwargs)
        return score, self._valid_result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._epoch, self._batch = epoch_idx, 0
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _check_nan(self, loss):
        if not bool(torch.isfinite(loss).all()):
            last = (f"the last good checkpoint, {self.saved_model_file} (epoch {self._saved_epoch}), is intact"
                    if self._saved_epoch is not None else "no checkpoint was saved before")
            raise TrainingDiverged(
                "training", f"the loss became {loss.item()} at epoch {self._epoch}, batch {self._batch}; {last}",
                f"lower learning_rate (now {self.config['learning_rate']}) or set clip_grad_norm, e.g. "
                f"--clip_grad_norm=\"{{'max_norm': 5.0}}\"")
        self._batch += 1

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "config": plain(self.config.final_config_dict),
            "external_config": plain(self.config.external_config_dict),
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": plain(self._valid_result),
            "rng": _rng_states(self._train_data),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }
        write_atomic(path, lambda handle: torch.save(state, handle), binary=True)
        self._saved_epoch = epoch
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def _load_model(self, path):
        checkpoint = load_checkpoint(path, self.config, self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        return checkpoint

    def resume_checkpoint(self, resume_file):
        """Continue a run from ``resume_file``: model, optimizer, epoch, early-stopping state and, when :meth:`fit`
        starts, the random generators."""
        self.saved_model_file = str(resume_file)
        checkpoint = self._load_model(self.saved_model_file)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self._resumed_rng = checkpoint["rng"]
        self._saved_epoch = checkpoint["epoch"]
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _build_optimizer(self, **kwargs):
        """RecBole's optimizer; with sparse-gradient embeddings (``sparse_item_embedding``) a
        :class:`SparseDenseOptimizer`: the learner for the dense parameters, its sparse counterpart for those."""
        sparse = [module.weight for module in self.model.modules()
                  if isinstance(module, torch.nn.Embedding) and module.sparse]
        if not sparse or "params" in kwargs:
            return super()._build_optimizer(**kwargs)
        rows = SPARSE_OPTIMIZERS[kwargs.get("learner", self.learner).lower()](
            sparse, lr=kwargs.get("learning_rate", self.learning_rate))
        dense = [parameter for parameter in self.model.parameters() if all(parameter is not s for s in sparse)]
        return SparseDenseOptimizer(super()._build_optimizer(params=dense, **kwargs), rows)

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's; when a batch has more scores than ``eval_slice_logits`` and the metrics need only the top k,
        :func:`top_k_in_slices` over the model's ``full_sort_scores`` instead (memory: one slice)."""
        interaction, history_index, positive_u, positive_i = batched_data
        items_per_slice = max(1, self.config["eval_slice_logits"] // len(interaction))
        needs_all = any(self.eval_collector.register.need(key) for key in ("rec.items", "rec.meanrank", "rec.score"))
        if items_per_slice >= self.tot_item_num or needs_all or not hasattr(self.model, "full_sort_scores"):
            return super()._full_sort_batch_eval(batched_data)
        interaction = interaction.to(self.device)
        scores, columns = top_k_in_slices(self.model.full_sort_scores(interaction, items_per_slice),
                                          len(interaction), max(self.config["topk"]), positive_u, positive_i,
                                          history_index)
        return interaction, scores, positive_u, columns

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            if not self.config["single_spec"]:
                torch.distributed.barrier()  # the first process has saved the best model
            path = model_file or self.saved_model_file
            self._load_model(path)
            self.logger.info(f"Loading model structure and parameters from {path}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


def trainer_class(config):
    """RecBole's trainer for ``config``'s model, with :class:`SafeTraining`."""
    base = get_trainer(config["MODEL_TYPE"], config["model"])
    return type(base.__name__, (SafeTraining, base), {"__module__": __name__})
