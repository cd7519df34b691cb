"""Crash-safe file writes: the one home of "write a temp file, fsync, rename".

A reader (or a process that restarts after a crash) sees either the old file or the new one,
never half of one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None], sync: bool = True) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temp file, which replaces ``path``.

    ``sync`` fsyncs the file and its folder, so the new content survives a power cut.
    """
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.tmp')
    try:
        write(tmp)
        if sync:
            with open(tmp, 'rb+') as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, sync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_text(text), sync=sync)


def atomic_write_json(path: Path, obj, sync: bool = True, sort_keys: bool = False) -> None:
    """Write ``obj`` as indented JSON (trailing newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=sort_keys, default=str) + '\n',
                      sync=sync)
