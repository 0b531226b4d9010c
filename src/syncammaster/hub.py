"""Model names that are a local path or a Hugging Face Hub repo id, resolved to local files through huggingface_hub.

A name is read in this order:

1. a path that exists is that path (a ``Path`` object is always a path);
2. a string that reads as a repo id (``OWNER/REPO`` for a folder; ``OWNER/REPO`` or ``OWNER/REPO/FILE`` for a file),
   whose first part is not a local folder, is fetched with ``snapshot_download`` / ``hf_hub_download``: from
   huggingface_hub's cache when it is there, else from the Hub into that cache (``HF_HOME``, ``HF_HUB_CACHE``,
   ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and the login token all apply, as for any huggingface_hub download);
3. anything else stays a path, and the caller's check says it does not exist.

A repo that cannot be fetched (no network, offline and not cached, no such repo, revision or file) raises ``HubError``
with one line naming the repo and the way to use a local copy instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

WAN_REPO = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"  # or Wan-AI/Wan2.1-T2V-14B-Diffusers
CHECKPOINT_REPO = "KwaiVGI/SynCamMaster-Wan2.1"
CHECKPOINT_FILE = "step20000.ckpt"  # the released checkpoint's name in CHECKPOINT_REPO
DATASET_REPO = "KwaiVGI/SynCamVideo-Dataset"  # a dataset repo holding SynCamVideo-Dataset.tar.gz

# The parts of a Wan2.1 diffusers repo that a released checkpoint needs: its transformer comes from the checkpoint,
# but the transformer's config names the head count.
WAN_FILES_WITHOUT_TRANSFORMER = ["model_index.json", "tokenizer/*", "text_encoder/*", "vae/*", "scheduler/*",
                                 "transformer/config.json"]
WAN_FILES = [*WAN_FILES_WITHOUT_TRANSFORMER, "transformer/*"]


LOCAL_COPY_FIX = "download it where there is a network (syncammaster download, or hf download) and pass its local path"


class HubError(ValueError):
    """A repo id that could not be fetched; the message names the repo and the way to use a local copy."""


def split_repo_name(name: str | os.PathLike, with_file: bool = False) -> tuple[str, str | None] | None:
    """``(repo_id, file_in_repo)`` if ``name`` reads as a Hub name rather than a local path, else None.

    Folders: ``OWNER/REPO`` (file None). Files (``with_file``): ``OWNER/REPO`` (file None: the caller's default) or
    ``OWNER/REPO/PATH/IN/REPO``. A ``Path``, a path that exists and a name whose first part is a local folder are
    local paths.
    """
    if not isinstance(name, str) or Path(name).expanduser().exists():
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    parts = name.split("/")
    if len(parts) < 2 or (len(parts) > 2 and not with_file) or Path(parts[0]).is_dir():
        return None
    repo_id, file_parts = "/".join(parts[:2]), parts[2:]
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return None
    if any(part in ("", ".", "..") for part in file_parts):
        return None
    return repo_id, "/".join(file_parts) or None


def resolve_folder(
    name: str | os.PathLike,
    revision: str | None = None,
    allow_patterns: list[str] | None = None,
    **hub_kwargs,
) -> Path:
    """A local folder for ``name``: the path itself, or the snapshot of the Hub repo it names (see the module doc).

    ``allow_patterns``: only these files of a repo (glob patterns, as ``snapshot_download`` takes them).
    ``hub_kwargs``: more ``snapshot_download`` arguments (``cache_dir``, ``token``, ``local_files_only``).
    """
    parsed = split_repo_name(name)
    if parsed is None:
        return Path(name)
    return fetch_repo(parsed[0], revision, allow_patterns=allow_patterns, name=str(name), **hub_kwargs)


def resolve_file(
    name: str | os.PathLike,
    revision: str | None = None,
    default_filename: str = CHECKPOINT_FILE,
    **hub_kwargs,
) -> Path:
    """A local file for ``name``: the path itself, or ``FILE`` of Hub repo ``OWNER/REPO/FILE`` (``OWNER/REPO``: its
    ``default_filename``), fetched with ``hf_hub_download``. ``hub_kwargs``: more ``hf_hub_download`` arguments."""
    parsed = split_repo_name(name, with_file=True)
    if parsed is None:
        return Path(name)
    repo_id, filename = parsed[0], parsed[1] or default_filename
    return fetch_file(repo_id, filename, revision, name=str(name), **hub_kwargs)


class _RetryChatter(logging.Filter):
    """Drops huggingface_hub's warning per retried request ("... thrown while requesting ...", "Retrying in ..."): a
    fetch that fails in the end says so in one line (``HubError``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "thrown while requesting" not in message and not message.startswith("Retrying in")


def _quiet_retries() -> None:
    http_logger = logging.getLogger("huggingface_hub.utils._http")
    if not any(isinstance(f, _RetryChatter) for f in http_logger.filters):
        http_logger.addFilter(_RetryChatter())


def fetch_repo(repo_id: str, revision: str | None = None, name: str | None = None, fix: str | None = None,
               **hub_kwargs) -> Path:
    """``snapshot_download(repo_id, revision=revision, **hub_kwargs)``: the snapshot folder in huggingface_hub's cache
    (downloading what it lacks; an interrupted download resumes), or ``HubError`` (``hub_error_message``)."""
    from huggingface_hub import snapshot_download

    _quiet_retries()
    try:
        return Path(snapshot_download(repo_id, revision=revision, **hub_kwargs))
    except hub_failures() as error:
        raise HubError(hub_error_message(error, repo_id, revision, name=name, fix=fix)) from None


def fetch_file(repo_id: str, filename: str, revision: str | None = None, name: str | None = None,
               fix: str | None = None, **hub_kwargs) -> Path:
    """``hf_hub_download(repo_id, filename, revision=revision, **hub_kwargs)``: the file in huggingface_hub's cache,
    or ``HubError`` (``hub_error_message``)."""
    from huggingface_hub import hf_hub_download

    _quiet_retries()
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, **hub_kwargs))
    except hub_failures() as error:
        raise HubError(hub_error_message(error, repo_id, revision, name=name, filename=filename, fix=fix)) from None


def hub_failures() -> tuple[type[BaseException], ...]:
    """The exceptions a huggingface_hub download raises for an unreachable, missing or refused repo, file or revision
    (its HTTP errors, offline misses, a bad repo id, a failed Xet transfer)."""
    from huggingface_hub import errors

    optional = (getattr(errors, name, None) for name in ("HTTPError", "XetDownloadError"))
    return (OSError, ValueError, errors.EntryNotFoundError, *(c for c in optional if c is not None))


def hub_error_message(error: Exception, repo_id: str, revision: str | None = None, name: str | None = None,
                      filename: str | None = None, fix: str | None = None) -> str:
    """One line for a failed fetch of ``repo_id`` (and ``filename`` in it): what went wrong and how to go on.

    ``name``: the name the user gave, when it could also have been a local path; ``fix``: how to go on without the
    Hub (default: download elsewhere and pass the local path).
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"{repo_id}/{filename}" if filename else repo_id
    prefix = f"{name} is not a local path, and " if name is not None else ""
    if name == what:  # the name given is the repo (or file) itself: say "it" after it
        what = "it"
    repo = "it" if name == repo_id else repo_id
    local = fix or LOCAL_COPY_FIX
    if isinstance(error, LocalEntryNotFoundError):  # offline, or the Hub unreachable, and not in the cache
        reason = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hugging Face Hub cannot be reached")
        return f"{prefix}{what} is not in the Hugging Face cache ({reason}); {local}"
    if isinstance(error, GatedRepoError):
        return (f"{prefix}{repo} is gated on the Hugging Face Hub: accept its terms on the repo page and log in "
                f"(hf auth login), or {local}")
    if isinstance(error, RepositoryNotFoundError):
        missing = "such repo" if repo == "it" else f"repo {repo_id}"
        return (f"{prefix}the Hugging Face Hub has no {missing} (or it is private: log in with hf auth login); "
                f"check the name, or {local}")
    if isinstance(error, RevisionNotFoundError):
        return f"{prefix}{repo} has no revision {revision!r} on the Hugging Face Hub; give another --revision"
    if isinstance(error, EntryNotFoundError):
        return f"{prefix}{repo} has no file {filename}; give OWNER/REPO/FILE naming a file of the repo"
    reason = " ".join(str(error).split()).split(". ")[0] or type(error).__name__
    return f"{prefix}cannot fetch {what} from the Hugging Face Hub ({reason}); {local}"
