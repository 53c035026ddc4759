"""RecBole's trainers with checkpoints a user can trust and a clear stop when training diverges.

:func:`trainer_class` wraps the trainer RecBole picks for a model (``recbole.utils.get_trainer``) in
:class:`SafeTraining`:

- checkpoints are written atomically (:func:`recbole_mamba.atomic_file.write_atomic`): a kill at any moment leaves
  the previous checkpoint intact;
- a checkpoint holds plain data only (the configuration as a dict of strings, numbers, lists and dicts, not a
  pickled ``Config``), so ``torch.load(path, weights_only=True)`` loads it;
- :func:`load_checkpoint` rejects a missing file, an unsafe (pickled-object) file, or one made for another model or
  dataset with one line; the trainer uses it to reload the best model and to resume;
- a NaN or infinite loss stops training with :class:`TrainingDiverged`, naming the epoch, the batch and the last
  good checkpoint.
"""

import enum
import pickle

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


class SafeTraining:
    """Mixin for a RecBole trainer: atomic plain-data checkpoints and a one-line stop on divergence."""

    _epoch = _batch = 0
    _saved_epoch = None

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
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
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
        """Continue a run from ``resume_file``: model, optimizer, epoch and early-stopping state."""
        self.saved_model_file = str(resume_file)
        checkpoint = self._load_model(self.saved_model_file)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self._saved_epoch = checkpoint["epoch"]
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            path = model_file or self.saved_model_file
            self._load_model(path)
            self.logger.info(f"Loading model structure and parameters from {path}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


def trainer_class(config):
    """RecBole's trainer for ``config``'s model, with :class:`SafeTraining`."""
    base = get_trainer(config["MODEL_TYPE"], config["model"])
    return type(base.__name__, (SafeTraining, base), {"__module__": __name__})
