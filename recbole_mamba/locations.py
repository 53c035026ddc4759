"""Where recbole-mamba's yaml defaults live, and whether it runs from a checkout of its repository.

``properties/`` at the top of the repository is the one place the defaults are written. A wheel or sdist ships that
folder inside the package as ``recbole_mamba/properties`` (``setup.py``); a checkout (and an editable install) reads
the repository's folder directly.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_INSTALLED_PROPERTIES = PACKAGE_DIR / "properties"
_CHECKOUT_PROPERTIES = PACKAGE_DIR.parent / "properties"


def checkout_root():
    """The repository's root when running from a checkout (its ``properties/`` beside the package), else None."""
    if not _INSTALLED_PROPERTIES.is_dir() and _CHECKOUT_PROPERTIES.is_dir():
        return PACKAGE_DIR.parent
    return None


def properties_dir():
    """The folder of ``overall.yaml``, ``model/*.yaml`` and ``dataset/*.yaml``."""
    for folder in (_INSTALLED_PROPERTIES, _CHECKOUT_PROPERTIES):
        if (folder / "overall.yaml").is_file():
            return folder
    raise RuntimeError(f"recbole-mamba is installed without its properties/ folder (looked in {_INSTALLED_PROPERTIES}"
                       f" and {_CHECKOUT_PROPERTIES}): a bug in the package build, please report it")
