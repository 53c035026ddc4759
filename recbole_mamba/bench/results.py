"""Writing benchmark results: tables and plots written atomically, log axes labelled at the measured values only."""

from pathlib import Path

from recbole_mamba.atomic_file import write_atomic
from recbole_mamba.locations import checkout_root

# The repository's results/ in a checkout, ./results for an installed package.
RESULTS_DIR = (checkout_root() or Path.cwd()) / "results"


def write_text(path, text):
    """Write a results table (or any text) atomically."""
    write_atomic(path, lambda handle: handle.write(text))


def publish(folder, name, table, plot=None):
    """Print a benchmark's markdown ``table`` and write it as ``<folder>/<name>.md``, and its plot as
    ``<folder>/<name>.png`` through ``plot(path)`` when given."""
    print(table)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / f"{name}.md", table)
    written = [folder / f"{name}.md"]
    if plot is not None:
        plot(folder / f"{name}.png")
        written.append(folder / f"{name}.png")
    print("wrote " + " and ".join(map(str, written)))


def save_figure(figure, path):
    """Save a matplotlib figure as PNG, atomically."""
    write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=120), binary=True)


def label_measured(axis, values):
    """On a log x axis, tick and label only ``values`` (no overlapping minor labels such as 3x10^2)."""
    from matplotlib.ticker import NullLocator

    values = sorted(set(values))
    axis.set_xticks(values, [str(value) for value in values])
    axis.xaxis.set_minor_locator(NullLocator())
