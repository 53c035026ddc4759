"""Writing a file atomically: readers (and a later run after a crash) see the old file or the whole new one."""

import os
import tempfile
from pathlib import Path


def write_atomic(path, write, binary=False):
    """Write ``path`` through ``write(handle)``: into a temporary file in the same folder, flushed and fsync'ed, then
    renamed over ``path`` (mode 0644 less the umask). On any error, or a kill before the rename, ``path`` keeps its
    previous content; the temporary file is removed on errors."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": "\n"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o644 & ~umask)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder):
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
