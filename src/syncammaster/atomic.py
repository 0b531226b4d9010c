"""All-or-nothing writes: a file or a whole folder is built next to its target, then moved into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_atomically(save, target: Path) -> Path:
    """Calls ``save(folder)`` on a temporary folder next to ``target`` and moves it into place when complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        # mkdtemp makes a private (0700) folder; the result gets the mode of any folder this process creates.
        staging.chmod(0o777 & ~_umask())
        save(staging)
        if target.exists():
            old = staging.with_name(staging.name + "-old")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_atomically(path: str | Path, content: str | bytes) -> Path:
    """Writes ``content`` (text as UTF-8, or bytes) to ``path`` via a temporary file beside it and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        # mkstemp makes a private (0600) file; the result gets the mode of any file this process creates.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
