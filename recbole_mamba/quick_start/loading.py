"""A trained model back from its checkpoint, with the dataset and splits it was trained on.

:func:`load_data_and_model` replaces RecBole's ``recbole.quick_start.load_data_and_model`` (same return value), which
cannot load this project's checkpoints: it ``torch.load``\\ s a pickled ``Config`` (ours store plain data, for
``weights_only=True``), and its ``recbole.utils.get_model`` knows no plugin model (and dies on the lightgbm import).
"""

from recbole.utils import init_seed

from recbole_mamba.errors import InputError
from recbole_mamba.quick_start.config import Config
from recbole_mamba.quick_start.trainer import load_checkpoint


def checkpoint_config(checkpoint, path):
    """The run's :class:`Config`, rebuilt from a checkpoint's model, dataset and the options its user had set."""
    if "external_config" not in checkpoint:
        raise InputError(path, "the checkpoint does not record the run's options (saved by an older recbole-mamba)",
                         "train the model again to serve it")
    made_for = checkpoint["config"]
    return Config(model=made_for["model"], dataset=made_for["dataset"], config_dict=checkpoint["external_config"])


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for a checkpoint saved by recbole-mamba's trainer.

    Rebuilds the run's configuration, loads the dataset with :func:`recbole_mamba.data.create_dataset` (relative
    paths the run was given are relative to the current folder, as they were for the run) and the model's weights.

    Returns:
        tuple: ``(config, model, dataset, train_data, valid_data, test_data)``, the model in eval mode on
        ``config["device"]``.
    """
    from recbole_mamba import data

    checkpoint = load_checkpoint(model_file)
    config = checkpoint_config(checkpoint, model_file)
    init_seed(config["seed"], config["reproducibility"])
    dataset = data.create_dataset(config)
    train_data, valid_data, test_data = data.data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model.eval(), dataset, train_data, valid_data, test_data
