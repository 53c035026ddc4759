"""Progress lines on stderr for long steps (conversion, benchmarks): ``<step>...`` then ``<step>: done in N s``."""

import contextlib
import sys
import time


@contextlib.contextmanager
def step(label, enabled=True, stream=None):
    """Announce ``label`` before a step and its duration after it (nothing when ``enabled`` is false)."""
    stream = stream or sys.stderr
    if enabled:
        print(f"{label}...", file=stream, flush=True)
    began = time.perf_counter()
    yield
    if enabled:
        print(f"{label}: done in {time.perf_counter() - began:.1f} s", file=stream, flush=True)
