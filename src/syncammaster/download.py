"""``syncammaster download {wan,checkpoint,dataset}``: the base model, the released checkpoint or the SynCamVideo
dataset from the Hugging Face Hub, then the flags that use it.

Files come through huggingface_hub's cache (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``, the login token apply;
an interrupted download resumes when the command runs again). Without ``--out`` the models stay there and the flags
name the repo id (which then resolves from the cache, offline too); with ``--out`` they are also placed in that folder
(hard links where the file system allows, else copies). The dataset's archive is unpacked into ``--out`` (the
release's ``tar -xzvf`` step), refusing members that would land outside it, links and devices, then removed from the
cache unless ``--keep-archive``. An output appears whole or not at all: it is built in a staging folder beside it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .atomic import save_atomically, staging_folder
from .hub import CHECKPOINT_FILE, CHECKPOINT_REPO, DATASET_REPO, WAN_FILES, WAN_REPO, fetch_file, fetch_repo

DEFAULT_DATASET_DIR = "data/SynCamVideo-Dataset"  # where configs/paper/*.toml look for it
ARCHIVE_PATTERNS = ["*.tar.gz", "*.tgz"]
GZIP_CHUNK = 1 << 20
UNPACKED = "unpacked"  # the staging folder's subfolder the archive is unpacked into


@dataclass(frozen=True)
class Source:
    """What ``download KIND`` fetches by default."""

    repo: str
    repo_type: str | None  # None: a model repo
    summary: str


SOURCES = {
    "wan": Source(WAN_REPO, None, f"the Wan2.1 base model ({WAN_REPO}; or --repo Wan-AI/Wan2.1-T2V-14B-Diffusers)"),
    "checkpoint": Source(CHECKPOINT_REPO, None, f"the released SynCamMaster checkpoint ({CHECKPOINT_REPO}/"
                         f"{CHECKPOINT_FILE})"),
    "dataset": Source(DATASET_REPO, "dataset", f"the SynCamVideo dataset ({DATASET_REPO}), unpacked"),
}


class DownloadError(ValueError):
    """A download that cannot go on; the message names the problem and the fix."""


def download(kind: str, out: str | Path | None = None, revision: str | None = None, repo: str | None = None,
             keep_archive: bool = False, force_download: bool = False, progress: bool = True) -> None:
    """Fetch ``kind`` (``wan``, ``checkpoint`` or ``dataset``: :data:`SOURCES`) and print the flags that use it.

    Args:
        kind: what to fetch.
        out: also place the files in this new folder (the dataset: unpack it there; default
            :data:`DEFAULT_DATASET_DIR`).
        revision: a branch, tag or commit of the repo.
        repo: another repo than the kind's own (a checkpoint: ``OWNER/NAME`` or ``OWNER/NAME/FILE``).
        keep_archive: the dataset: keep its archive in the Hugging Face cache after unpacking it.
        force_download: fetch the files again even if the cache holds them.
        progress: show progress bars.
    """
    repo_id, filename = _repo_and_file(repo or SOURCES[kind].repo, kind)
    out = Path(out) if out is not None else (Path(DEFAULT_DATASET_DIR) if kind == "dataset" else None)
    target = out / filename if kind == "checkpoint" and out is not None else out
    if target is not None:  # checked before any download
        _check_free(target)
    hub = {"revision": revision, "force_download": force_download}
    if not progress:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    try:
        if kind == "wan":
            _download_wan(repo_id, target, hub)
        elif kind == "checkpoint":
            _download_checkpoint(repo_id, filename, target, hub)
        else:
            _download_dataset(repo_id, target, hub, keep_archive=keep_archive, progress=progress)
    except OSError as error:  # writing the output: a full disk, a read-only folder
        raise DownloadError(f"cannot write {target} ({error.strerror or error}); free space or choose another --out "
                            "(the download stays in the Hugging Face cache)") from None


def _download_wan(repo_id: str, out: Path | None, hub: dict) -> None:
    fix = f"fetch {repo_id} elsewhere (hf download {repo_id} --local-dir DIR) and pass --wan DIR"
    snapshot = fetch_repo(repo_id, allow_patterns=WAN_FILES, fix=fix, **hub)
    if out is not None:
        save_atomically(lambda staging: _link_tree(snapshot, staging), out)
    print(f"{repo_id} is in {out or snapshot}")
    print(f"next: syncammaster generate --wan {_flag_value(out, snapshot, repo_id, hub)} --checkpoint "
          f"{CHECKPOINT_REPO} --prompt ... --out DIR")


def _download_checkpoint(repo_id: str, filename: str, target: Path | None, hub: dict) -> None:
    fix = f"fetch it elsewhere (hf download {repo_id} {filename} --local-dir DIR) and pass --checkpoint DIR/{filename}"
    cached = fetch_file(repo_id, filename, fix=fix, **hub)
    if target is not None:
        _place_file(cached, target)
    name = repo_id if filename == CHECKPOINT_FILE else f"{repo_id}/{filename}"
    print(f"{repo_id}/{filename} is in {target or cached}")
    print(f"next: syncammaster generate --wan {WAN_REPO} --checkpoint {_flag_value(target, cached, name, hub)} "
          "--prompt ... --out DIR")


def _download_dataset(repo_id: str, out: Path, hub: dict, keep_archive: bool, progress: bool) -> None:
    fix = (f"fetch its archive elsewhere (hf download {repo_id} --repo-type dataset --local-dir DIR), unpack it "
           "(tar -xzf) and use that folder")
    snapshot = fetch_repo(repo_id, repo_type="dataset", allow_patterns=ARCHIVE_PATTERNS, fix=fix, **hub)
    archives = sorted(p for pattern in ARCHIVE_PATTERNS for p in snapshot.rglob(pattern))
    if not archives:
        raise DownloadError(f"{repo_id} holds no .tar.gz archive; give the SynCamVideo dataset repo with --repo")
    _unpack_archives(archives, out, progress)
    contents = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    print(f"unpacked {', '.join(a.name for a in archives)} to {out}/ ({', '.join(contents)})")
    if not keep_archive:
        _remove_cached_snapshot(repo_id, snapshot)
    captions = "" if (out / "metadata.csv").is_file() else " (once it has captions: metadata.csv with file_name,text)"
    print(f"next: data_root = \"{out}\" in a training config, or syncammaster cache {out} --model {WAN_REPO} "
          f"--out cache{captions}")


def _flag_value(out: Path | None, cached: Path, name: str, hub: dict) -> str:
    """What to pass for the download: ``--out``, else the repo id, or the cached path itself when a revision was
    asked for (a command's ``--revision`` applies to all its repo ids)."""
    return str(out or (cached if hub["revision"] else name))


# ---------------------------------------------------------------------------------------------------------------
# Placing files
# ---------------------------------------------------------------------------------------------------------------


def _repo_and_file(name: str, kind: str) -> tuple[str, str | None]:
    """(repo id, file in it: checkpoints only) of ``--repo`` or the default source."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    parts = name.split("/")
    repo_id = "/".join(parts[:2])
    extra = "/OWNER/NAME/FILE" if kind == "checkpoint" else ""
    try:
        validate_repo_id(repo_id)
        if len(parts) < 2 or (len(parts) > 2 and kind != "checkpoint") or any(p in ("", ".", "..") for p in parts):
            raise HFValidationError(name)
    except HFValidationError:
        raise DownloadError(f"--repo {name} is not a Hugging Face repo id; give OWNER/NAME{extra}") from None
    return repo_id, ("/".join(parts[2:]) or CHECKPOINT_FILE) if kind == "checkpoint" else None


def _check_free(target: Path) -> None:
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise DownloadError(f"{target} already exists; choose another --out folder (existing files are never "
                            "replaced)")


def _link_or_copy(source: Path, destination: Path) -> None:
    """A hard link to the cached file (no second copy on disk), or a copy across file systems."""
    source = source.resolve()  # the cache's snapshot files are links to its blobs
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def _link_tree(snapshot: Path, folder: Path) -> None:
    for path in sorted(snapshot.rglob("*")):
        if path.is_file():
            destination = folder / path.relative_to(snapshot)
            destination.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(path, destination)


def _place_file(cached: Path, target: Path) -> None:
    """``cached`` as ``target``, whole or not at all (built under a temporary name beside it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    os.unlink(temporary)
    try:
        _link_or_copy(cached, Path(temporary))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------------
# The dataset archive
# ---------------------------------------------------------------------------------------------------------------


def _unpack_archives(archives: list[Path], out: Path, progress: bool = True) -> None:
    """Unpacks the archives into a staging folder beside ``out``, then moves the result (the archive's one top
    folder, if it has one) into place as ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with staging_folder(out) as staging:
        unpacked = staging / UNPACKED
        unpacked.mkdir()
        for archive in archives:
            _unpack(archive, unpacked, progress)
        entries = list(unpacked.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        if out.is_dir():
            out.rmdir()  # empty (checked before the download)
        os.replace(root, out)


def _unpack(archive: Path, folder: Path, progress: bool = True) -> None:
    """Streams the gzipped tar ``archive`` into ``folder`` with a progress bar over its bytes; members must be plain
    files or folders whose paths stay inside ``folder``. The whole gzip stream is read, so that an archive cut short
    or altered fails its length and checksum test instead of giving part of the dataset."""
    from tqdm.auto import tqdm
    from tqdm.utils import CallbackIOWrapper

    with open(archive, "rb") as raw, tqdm(total=archive.stat().st_size, unit="B", unit_scale=True,
                                           desc=f"unpacking {archive.name}", disable=not progress) as bar:
        try:
            with gzip.GzipFile(fileobj=CallbackIOWrapper(bar.update, raw, "read")) as stream:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        _check_member(member, archive)
                        if hasattr(tarfile, "data_filter"):  # Python's own guard as well, where it has one
                            tar.extract(member, folder, filter="data")
                        else:  # pragma: no cover - Python before 3.10.12 / 3.11.4
                            tar.extract(member, folder)
                while stream.read(GZIP_CHUNK):  # the rest: tar padding, then gzip's length and CRC test
                    pass
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise DownloadError(f"{archive.name} is damaged or cut short ({reason}); download it again with "
                                "--force-download") from None


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise DownloadError(f"{archive.name} holds {member.name!r}, a path outside the folder it unpacks into; "
                            "refusing to unpack it (is it the SynCamVideo archive?)")
    if not (member.isfile() or member.isdir()):
        raise DownloadError(f"{archive.name} holds {member.name!r}, a link or special file; refusing to unpack it "
                            "(the dataset holds plain files only)")


def _remove_cached_snapshot(repo_id: str, snapshot: Path) -> None:
    """Frees the cache of the unpacked archive: deletes the snapshot's revision (files no other revision uses)."""
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(snapshot.parents[2])  # CACHE/datasets--OWNER--NAME/snapshots/COMMIT
    commits = [revision.commit_hash for repo in info.repos if repo.repo_id == repo_id and repo.repo_type == "dataset"
               for revision in repo.revisions if revision.snapshot_path == snapshot]
    if commits:
        info.delete_revisions(*commits).execute()
        print("removed the archive from the Hugging Face cache (--keep-archive keeps it)")
