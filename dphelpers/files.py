"""The user's files: paths checked before any work, writes that never lose what was there.

Not taught in a notebook; every reader and writer of the package goes through it.

- :func:`require_file`: a path to read must be an existing regular file; a folder is called
  a folder (not "missing"), a URL is refused as such.
- :func:`check_destination`: a path to write (a file, or an output folder) is checked before
  the work that produces it starts: an existing folder where a file goes, a file where a
  folder goes, or a parent that is a file each raise at once, naming the path.
- :func:`atomic_write`: write to a temporary name of this process's own beside the target,
  then rename; on *any* failure (disk full, Ctrl-C, an error while writing) the temporary is
  removed and the old file is untouched.  Two writers never share a temporary.
- :class:`FileLock`: one writer per file across processes (``flock`` on ``PATH.lock``); a
  second writer fails at once, saying which process holds the lock.
"""
from __future__ import annotations

import errno
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["require_file", "check_destination", "atomic_write", "FileLock", "FileLocked"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a :class:`Path` after checking that it names an existing regular file.

    Raises ``ValueError`` for a URL (only local files are read), ``IsADirectoryError`` for a
    folder and ``FileNotFoundError`` for a missing path, each naming ``what`` and the path.
    """
    text = os.fspath(path)
    if isinstance(text, str) and _URL.match(text):
        raise ValueError(f"{what} {text!r} is a URL: only local files are supported (download "
                         "it first)")
    p = Path(text)
    if p.is_dir():
        raise IsADirectoryError(f"{what} {str(p)!r} is a folder, expected a file")
    if not p.is_file():
        if p.exists():
            raise ValueError(f"{what} {str(p)!r} is not a regular file")
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist")
    return p


def _blocking_parent(p: Path) -> Path | None:
    """The first ancestor of ``p`` that exists and is not a folder, if any."""
    for parent in reversed(p.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_destination(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a file (or, with ``folder``,
    used as an output folder); returns it as a :class:`Path`.  Creates nothing.

    Raises ``IsADirectoryError`` / ``NotADirectoryError`` naming ``what`` and the path when a
    folder stands where a file goes, a file where a folder goes, or a parent is a file.
    """
    p = Path(path)
    blocker = _blocking_parent(p)
    if blocker is not None:
        raise NotADirectoryError(f"{what} {str(p)!r} lies under {str(blocker)!r}, which is a "
                                 "file, not a folder")
    if folder and p.exists() and not p.is_dir():
        raise NotADirectoryError(f"{what} {str(p)!r} is an existing file, expected a folder "
                                 "(the results are written into it)")
    if not folder and p.is_dir():
        raise IsADirectoryError(f"{what} {str(p)!r} is an existing folder, expected a file "
                                "name (e.g. " + str(p / "model.pt") + ")")
    return p


def _temporary(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` then rename ``tmp`` onto ``path``: readers see the old file or the new
    one, never half of one.  On any failure, Ctrl-C included, ``tmp`` is removed and the
    exception goes on; ``path`` is untouched."""
    path = check_destination(path, "output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class FileLocked(RuntimeError):
    """Another process holds the lock of a file (see :class:`FileLock`)."""


class FileLock:
    """One writer per file: ``with FileLock(path, what): ...`` holds ``flock`` on
    ``path.lock`` (removed on exit).  A second holder raises :class:`FileLocked` at once,
    naming the process that holds it.  The lock ends with its process, so a killed run
    leaves no stale lock behind (only, at worst, an empty ``.lock`` file)."""

    def __init__(self, path: str | os.PathLike, what: str = "file"):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "FileLock":
        """Take the lock without waiting and write this process's id into ``path.lock``;
        returns ``self``.  Raises :class:`FileLocked` when another process holds it."""
        import fcntl
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise FileLocked(f"{self.what} {str(self.path)!r} is being written by process "
                                 f"{holder} (lock {str(self.lock_path)!r}): wait for it to "
                                 "finish or stop it, or write another file") from None
            try:      # the holder before us may have removed the file we opened: lock anew
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove ``path.lock`` and drop the lock; does nothing when it is not held."""
        if self._fd is None:
            return
        self.lock_path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
