"""The ``SYNTHETIC`` marker: a file in a dataset folder saying that the data there is generated, not real.

Generators write it (:func:`write_marker`), the KuaiRand converter copies or removes it, and training logs and
summaries name a marked dataset SYNTHETIC (:func:`synthetic_description`).
"""

from pathlib import Path

from recbole_mamba.atomic_file import write_atomic

MARKER_NAME = "SYNTHETIC"


def _folder(dataset_dir):
    path = Path(dataset_dir)
    return path.parent if path.is_file() else path


def synthetic_description(dataset_dir):
    """The marker's one-line description (what generated the data) in the folder ``dataset_dir`` (or the folder of a
    file in it), or ``None`` for real data (no marker)."""
    marker = _folder(dataset_dir) / MARKER_NAME
    if not marker.is_file():
        return None
    return marker.read_text(encoding="utf-8").strip() or "synthetic"


def is_synthetic(dataset_dir):
    """Whether the folder ``dataset_dir`` (or the folder of a file in it) carries the marker."""
    return synthetic_description(dataset_dir) is not None


def write_marker(folder, description):
    """Mark ``folder`` as holding synthetic data, with a one-line ``description`` (atomically)."""
    text = " ".join(str(description).split()) + "\n"
    write_atomic(Path(folder) / MARKER_NAME, lambda handle: handle.write(text))


def remove_marker(folder):
    """Unmark ``folder`` (real data replaced the synthetic data there); nothing happens without a marker."""
    (Path(folder) / MARKER_NAME).unlink(missing_ok=True)
