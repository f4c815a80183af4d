"""Where paid work outlives runs: the store's location, atomic file writes, and outs DVC already locked.

DVC owns everything under the versioned outs: `dvc exp run` checks them out from dvc.lock with force,
`exp apply` and checkouts restore older copies, queued and temp experiments start from HEAD's copy, and
a re-run deletes a stage's outs before it starts. So answers paid for and clips cut live in a store
outside every out, shared by the workspace and its queued and temp experiments:

- `EVUD_STORE` (a local directory), by default `<repository>/.evud/` (git-ignored). The repository is
  DVC's `DVC_ROOT`, which DVC points at the main repository even for queued and temp runs, whose
  workspaces are temporary copies;
- `EVUD_ANSWER_STORE` (a local directory or an `s3://` / `gs://` prefix), by default `<EVUD_STORE>/answers`,
  so a team and its CI machines can share answers at request time.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

STORE_DIRNAME = ".evud"


def repository_root(start: Path | None = None) -> Path:
    """The DVC repository this run belongs to: DVC_ROOT when DVC runs the stage, else the nearest `.dvc/`."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"])
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / ".dvc").is_dir()), here)


def store_root() -> Path:
    """The local store: EVUD_STORE, or `.evud/` in the repository."""
    configured = os.environ.get("EVUD_STORE", "").strip()
    return Path(configured).expanduser() if configured else repository_root() / STORE_DIRNAME


def answer_store_url() -> str:
    """Where answers are kept: EVUD_ANSWER_STORE (a directory or an s3:// / gs:// prefix), or the local store."""
    configured = os.environ.get("EVUD_ANSWER_STORE", "").strip()
    return configured or str(store_root() / "answers")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a temp file beside it, fsync'd, renamed over it (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


# --- outs DVC already locked -------------------------------------------------------------------------


def locked_out_hash(stage: str, out: str, lock_file: Path = Path("dvc.lock")) -> str | None:
    """The md5 dvc.lock records for one out of one stage (`<md5>.dir` for a directory), or None."""
    try:
        lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    outs = ((lock.get("stages") or {}).get(stage) or {}).get("outs") or []
    return next((o.get("md5") for o in outs if o.get("path") == out), None)


@lru_cache(maxsize=4)
def _local_cache(repo_dir: str) -> Any | None:
    try:
        from dvc.repo import Repo

        return Repo(repo_dir).cache.local
    except Exception:  # noqa: BLE001  not a DVC repository, or a cache DVC cannot open: nothing to reuse
        return None


def dvc_cache_file(md5: str, repo_dir: Path = Path(".")) -> Path | None:
    """The file DVC's local cache holds for this hash (as configured: queued runs share the main cache)."""
    cache = _local_cache(str(repo_dir.resolve()))
    if cache is None:
        return None
    path = Path(cache.oid_to_path(md5))
    return path if path.is_file() else None


def locked_file(stage: str, out: str) -> Path | None:
    """The cached copy of a file out as dvc.lock last recorded it (what `dvc checkout` would restore)."""
    md5 = locked_out_hash(stage, out)
    return dvc_cache_file(md5) if md5 and not md5.endswith(".dir") else None


def locked_directory(stage: str, out: str) -> dict[str, Path]:
    """relative path -> cached copy, for each file of a directory out as dvc.lock last recorded it."""
    md5 = locked_out_hash(stage, out)
    listing = dvc_cache_file(md5) if md5 and md5.endswith(".dir") else None
    if listing is None:
        return {}
    files: dict[str, Path] = {}
    for entry in json.loads(listing.read_text(encoding="utf-8")):
        cached = dvc_cache_file(entry["md5"])
        if cached is not None:
            files[entry["relpath"]] = cached
    return files


def read_json_file(path: Path) -> Any | None:
    """A JSON document, or None when it is missing or torn (a writer killed before its rename cannot tear it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
