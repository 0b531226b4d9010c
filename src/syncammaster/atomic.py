"""All-or-nothing writes: a file or a whole folder is built next to its target, then moved into place.

Folders are built in a hidden staging folder beside the target, ``.NAME.partial-XXXXXXXX``, held by an exclusive lock on
the file ``.NAME.partial-XXXXXXXX.lock`` next to it for as long as it is in use. The kernel drops the lock when the
process ends, however it ends, so a staging folder whose lock nobody holds was left by a killed process: the next write
into the same folder removes it (``remove_stale_staging``), first putting back what it had displaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, so stale folders are only found by age
    fcntl = None

STAGING_MARK = ".partial-"
LOCK_SUFFIX = ".lock"
OLD_SUFFIX = "-old"  # save_atomically: the folder being replaced, until the new one is in place
BACKUP_DIR = "replaced"  # in a staging folder: files displaced from the target, under their paths relative to it
# A staging folder without a lock file (made before locks existed) counts as stale once untouched for this long (no
# single write takes an hour), and only if it holds nothing but the two folders scene writes stage in.
STALE_UNLOCKED_SECONDS = 3600
SCENE_STAGING_PARTS = {"new", BACKUP_DIR}
_STAGING_NAME = re.compile(r"^\.(?P<name>.+)\.partial-[a-z0-9_]{8}$")  # tempfile's eight random characters


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_atomically(save, target: Path) -> Path:
    """Calls ``save(folder)`` on a staging folder next to ``target`` and moves it into place when complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with staging_folder(target) as staging:
        save(staging)
        if target.exists():
            old = staging.with_name(staging.name + OLD_SUFFIX)
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    return target


@contextlib.contextmanager
def staging_folder(target: Path, parent: Path | None = None) -> Iterator[Path]:
    """A new empty folder ``.{target.name}.partial-XXXXXXXX`` in ``parent`` (default: the target's) to build
    ``target`` in, locked while in use and removed on exit; stale ones in ``parent`` are removed first.

    The folder gets the permissions of any folder this process creates (not a temporary folder's private 0700).
    Files the caller displaces from ``target`` wait under ``staging / BACKUP_DIR``: if the process is killed, the
    next cleaning puts back those whose place is empty.
    """
    target = Path(target)
    parent = Path(parent) if parent is not None else target.parent
    remove_stale_staging(parent)
    while True:
        handle, lock_name = tempfile.mkstemp(prefix=f".{target.name}{STAGING_MARK}", suffix=LOCK_SUFFIX, dir=parent)
        lock = os.fdopen(handle, "w")
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if os.fstat(lock.fileno()).st_nlink:
            break
        lock.close()  # a cleaner took the new lock file for a stale one and removed it: make another
    lock_path = Path(lock_name)
    staging = lock_path.with_name(lock_path.name[: -len(LOCK_SUFFIX)])
    try:
        json.dump({"target": str(target.absolute()), "pid": os.getpid()}, lock)
        lock.flush()
        staging.mkdir()
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        lock.close()


def remove_stale_staging(parent: str | Path) -> list[Path]:
    """Removes the staging folders in ``parent`` left by processes that were killed mid-write; returns them.

    Only folders named as ``staging_folder`` names them are considered, and only when stale: their lock file is held
    by no process (or, lacking one, a scene's staging folder older than ``STALE_UNLOCKED_SECONDS``). What such a folder
    had displaced goes back where it came from if that place is still empty: the target folder ``save_atomically``
    had moved aside, and files under ``BACKUP_DIR``.
    """
    parent = Path(parent)
    try:
        names = {entry.name for entry in os.scandir(parent)}
    except OSError:
        return []
    bases = set()
    for name in names:
        base = name.removesuffix(LOCK_SUFFIX) if name.endswith(LOCK_SUFFIX) else name.removesuffix(OLD_SUFFIX)
        if _STAGING_NAME.match(base):
            bases.add(base)
    removed = []
    for base in sorted(bases):
        staging = parent / base
        lock_path = staging.with_name(base + LOCK_SUFFIX)
        if lock_path.is_file():
            with contextlib.suppress(OSError), lock_path.open("r+") as lock:
                if fcntl is None:
                    continue
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use
                target = _recorded_target(lock.read()) or parent / _STAGING_NAME.match(base)["name"]
                _restore_and_remove(staging, target)
                lock_path.unlink(missing_ok=True)
                removed.append(staging)
        elif staging.is_dir() and not staging.is_symlink():
            scene_staging = {entry.name for entry in staging.iterdir()} <= SCENE_STAGING_PARTS
            if scene_staging and time.time() - staging.stat().st_mtime > STALE_UNLOCKED_SECONDS:
                _restore_and_remove(staging, parent / _STAGING_NAME.match(base)["name"])
                removed.append(staging)
    return removed


def _recorded_target(text: str) -> Path | None:
    try:
        return Path(json.loads(text)["target"])
    except (ValueError, KeyError, TypeError):
        return None


def _restore_and_remove(staging: Path, target: Path) -> None:
    """Puts back what a stale staging folder displaced from ``target`` (where that place is empty), then removes it."""
    old = staging.with_name(staging.name + OLD_SUFFIX)
    if old.is_dir() and not old.is_symlink():
        if not target.exists():
            os.replace(old, target)
        else:
            shutil.rmtree(old, ignore_errors=True)
    backup = staging / BACKUP_DIR
    if staging.is_dir() and not staging.is_symlink():
        if backup.is_dir():
            for saved in sorted(p for p in backup.rglob("*") if p.is_file()):
                original = target / saved.relative_to(backup)
                if not original.exists():
                    original.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(saved, original)
        shutil.rmtree(staging, ignore_errors=True)


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
