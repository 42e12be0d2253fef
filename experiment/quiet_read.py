"""Reading an experiment's files without rewriting their inodes.

A scan or a regeneration reads ~30,000 small files of a 10,000-run experiment. Under the usual
``relatime`` mount option the first read of a file in a day (or after it changed) updates its
access time, which dirties its inode: the pass then pays for the journal updates as it reads,
and its next ``os.sync()`` (:mod:`experiment.durable`) writes them all to disk. On a fresh copy of
a 10,500-run experiment that was 35 % of the reads' CPU and 0.1 s of the first sync (measured,
``bench/README.md``). ``O_NOATIME`` leaves the access time alone, as backup tools do; it is
allowed on files the process owns, so a file owned by someone else is read the ordinary way.
"""

from __future__ import annotations

import os
from pathlib import Path

_PLAIN = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_QUIET = _PLAIN | getattr(os, "O_NOATIME", 0)
_flags = [_QUIET]
"""The flags in use: falls back to :data:`_PLAIN` for good after the first file we do not own."""
_BLOCK = 1 << 16


def read_bytes(path: str | Path) -> bytes:
    """The whole content of ``path``, read without updating its access time where allowed.

    Raises what ``open(path, "rb").read()`` raises (``FileNotFoundError``, ``IsADirectoryError``,
    ``PermissionError``, ...)."""
    try:
        fd = os.open(path, _flags[0])
    except PermissionError:
        if _flags[0] == _PLAIN:
            raise
        _flags[0] = _PLAIN  # O_NOATIME on a file we do not own: EPERM
        fd = os.open(path, _PLAIN)
    try:
        chunks = [os.read(fd, _BLOCK)]
        while chunks[-1]:
            chunks.append(os.read(fd, _BLOCK))
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 2 else b"".join(chunks)
