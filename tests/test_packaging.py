"""The package as a user installs it: a wheel, installed outside the repository, trains from another folder; and the
low-level modules import without RecBole."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO_ROOT, TINY_ML100K_ARGS

# What a wheel is not built from: the venv, data, results, git history and build leftovers of the checkout.
TOP_LEVEL_IGNORE = {".venv", ".git", "dataset", "results", "saved", "log", "log_tensorboard", "build", "dist"}


def build_ignore(folder, names):
    top = TOP_LEVEL_IGNORE if Path(folder) == REPO_ROOT else set()
    return {name for name in names if name in top or name == "__pycache__" or name.endswith(".egg-info")}


def build_wheel(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=build_ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "dist").glob("recbole_mamba-*.whl")
    return wheel


def test_wheel_ships_every_properties_file_and_both_commands(tmp_path):
    wheel = zipfile.ZipFile(build_wheel(tmp_path))
    names = set(wheel.namelist())
    shipped = {pattern: {f"recbole_mamba/properties/{path.relative_to(REPO_ROOT / 'properties').as_posix()}"
                         for path in (REPO_ROOT / "properties").rglob(pattern)} for pattern in ("*.yaml", "*.hyper")}
    assert all(shipped.values()) and set().union(*shipped.values()) <= names  # defaults and search spaces
    assert "recbole_mamba/__main__.py" in names
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    scripts = wheel.read(entry_points).decode()
    assert "recbole-mamba = recbole_mamba.quick_start.cli:main" in scripts
    assert "recbole-mamba-hyper = recbole_mamba.quick_start.tuning.cli:main" in scripts


def test_installed_wheel_trains_from_another_folder(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(build_wheel(tmp_path))], check=True, capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def python(*args):
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=300)

    where = python("-c", "import recbole_mamba.locations as l; print(l.properties_dir(), l.checkout_root())")
    assert where.stdout.split() == [str(site / "recbole_mamba" / "properties"), "None"], where.stderr
    result = python("-m", "recbole_mamba", "--model=RecMamba", *TINY_ML100K_ARGS, "--d_state=4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test result (RecMamba on ml-100k): " in result.stdout
    # an installed package writes where RecBole does: relative to the current folder
    assert list((elsewhere / "saved").glob("RecMamba-*.pth")) and (elsewhere / "log").is_dir()


def test_ops_and_mamba_block_import_without_recbole_or_pandas():
    code = ("import sys, recbole_mamba.ops, recbole_mamba.model.mamba_mixer; "
            "assert 'recbole' not in sys.modules and 'pandas' not in sys.modules, "
            "[m for m in sys.modules if m.startswith(('recbole.', 'pandas'))]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
