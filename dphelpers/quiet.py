"""Silence what native code writes straight to the process's stdout/stderr (notebook 04).

``torch.profiler`` prints ``profiler_start``/``profiler_stop`` log lines from C++ that no
Python setting turns off; in a notebook they would land in the book as debris.
:func:`native_output_silenced` points file descriptors 1 and 2 at ``/dev/null`` for the
duration of a block (Python's own ``print`` is flushed first and silenced too).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["native_output_silenced"]


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """Within the block, everything written to file descriptors 1 and 2 is discarded."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
