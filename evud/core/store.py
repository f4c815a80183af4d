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

import fcntl
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import yaml

from evud.core.params import runtime_seconds

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


@lru_cache(maxsize=1)
def file_mode() -> int:
    """The mode a new file gets from this process's umask (0644 under umask 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: Path, text: bool = True, durable: bool = False, newline: str | None = None) -> Iterator[IO]:
    """A file written whole or not at all: written to a temp file beside it, renamed over it when the block ends
    without an error (readers never see half of it; an error leaves the old file), fsync'd first when `durable`.

    The file gets the mode the umask gives, as an ordinary write would (mkstemp makes it 0600: a site served by a
    web server running as another user could not be read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with (os.fdopen(fd, "w", encoding="utf-8", newline=newline) if text else os.fdopen(fd, "wb")) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes whole or nothing, durably (fsync'd before the rename): entries of the stores."""
    with atomic_file(path, text=False, durable=True) as f:
        f.write(data)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


# --- claims between live runs -------------------------------------------------------------------------

CLAIM_WAIT_ENV = "EVUD_CLAIM_WAIT_S"
_DEFAULT_CLAIM_WAIT_S = 1800.0  # longer than any one clip cut or answer with its retries takes


def claim_wait_s() -> float:
    """How long a run waits for work another live run has claimed before it gives up on it (EVUD_CLAIM_WAIT_S)."""
    return runtime_seconds(CLAIM_WAIT_ENV, _DEFAULT_CLAIM_WAIT_S)


# The claims this process holds, by lock file: one registry for every view of a claims folder (a worker reaches the
# store through a new object per task), so a release through any view closes the file the claim holds open.
_HELD: dict[Path, int] = {}
_HELD_GUARD = threading.Lock()


class Claims:
    """Who is doing a piece of paid work right now, so that two runs sharing a store (queued experiments, `--temp`)
    do it once: an exclusive `flock` on a per-key lock file, held while the work is done.

    The kernel drops a flock when its holder's process dies (kill -9 and OOM included), so a claim is never stale
    and nothing is guessed from a PID or an age (containers restart with new hostnames and reused small PIDs).
    Taking a claim is one atomic call: no check-then-act. The file also names its holder, for messages only.
    Local directories (and NFS, which maps flock to its own locks) only: object stores cannot lock."""

    def __init__(self, root: Path):
        self.root = root
        self._host = socket.gethostname()

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.lock"

    def claim(self, key: str) -> bool:
        """Take the right to do this key's work now; False while another process (or thread) does it."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)  # a full or read-only disk raises here: nothing is done
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            if _names_this_file(path, fd):
                break
            os.close(fd)  # its holder released (and removed) it between our open and lock: lock the new file
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {self._host} since {stamp}\n".encode(), 0)
        with _HELD_GUARD:
            _HELD[path] = fd
        return True

    def claimed_elsewhere(self, key: str) -> bool:
        """True while another process (or another claim of this one) holds this key."""
        with _HELD_GUARD:
            if self._path(key) in _HELD:
                return False
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def holder(self, key: str) -> str:
        """Who holds the claim, as its holder wrote it (for messages: the lock, not this text, decides)."""
        try:
            return self._path(key).read_text().strip() or "a process that is starting"
        except OSError:
            return "a process that just finished"

    def release(self, key: str) -> None:
        with _HELD_GUARD:
            fd = _HELD.pop(self._path(key), None)
        if fd is None:
            return
        try:
            # Removed while still locked: a waiter that opened this file sees it is gone and locks a new one.
            self._path(key).unlink(missing_ok=True)
        except OSError:  # the store is failing: closing the file below releases the claim all the same
            pass
        finally:
            os.close(fd)


def _names_this_file(path: Path, fd: int) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


class ClaimWaits:
    """A run's waits for work other live runs have claimed: each said once on stderr (what, held by whom, until
    when), and given up after the cap (EVUD_CLAIM_WAIT_S), so a run never waits silently or for ever."""

    def __init__(self, claims: Claims, stage: str, cap_s: float | None = None):
        self.claims, self.stage = claims, stage
        self.cap_s = claim_wait_s() if cap_s is None else cap_s
        self._since: dict[str, float] = {}

    def give_up(self, key: str, what: str) -> str | None:
        """Called at each look at a key another run holds: None while this run waits on (the first look says what
        it waits for); once the cap has passed, the reason it gives up."""
        now = time.monotonic()
        if key not in self._since:
            self._since[key] = now
            print(f"{self.stage}: waiting for {what}: another run ({self.claims.holder(key)}) is doing it; giving up "
                  f"after {self.cap_s:g} s ({CLAIM_WAIT_ENV})", file=sys.stderr, flush=True)
        if now - self._since[key] < self.cap_s:
            return None
        return (f"claim_wait: {what} was still being done by another run ({self.claims.holder(key)}) after "
                f"{self.cap_s:g} s; run again once that run has finished (or raise {CLAIM_WAIT_ENV})")

    def done(self, key: str) -> None:
        self._since.pop(key, None)


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
def _dvc_repo(repo_dir: str) -> Any | None:
    try:
        from dvc.repo import Repo

        return Repo(repo_dir)
    except Exception:  # noqa: BLE001  not a DVC repository, or a cache DVC cannot open: nothing to reuse
        return None


def _local_cache(repo_dir: str) -> Any | None:
    repo = _dvc_repo(repo_dir)
    return repo.cache.local if repo is not None else None


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


def _out_hashes(lock: Any, out: str) -> list[str]:
    """The md5s a dvc.lock (or a run-cache entry) records for `out`, as an out or as a dep of any stage."""
    stages = (lock.get("stages") or {}).values() if isinstance(lock, dict) and "stages" in lock else [lock]
    found = []
    for stage in stages:
        if isinstance(stage, dict):
            for entry in (stage.get("outs") or []) + (stage.get("deps") or []):
                if isinstance(entry, dict) and entry.get("path") == out and entry.get("md5"):
                    found.append(entry["md5"])
    return found


def _git_locks(repo_dir: Path) -> Iterator[Any]:
    """dvc.lock as HEAD and every experiment ref (refs/exps/...) hold it, read by one `git cat-file --batch` (one
    process, not one `git show` per experiment); none where git cannot say."""
    try:
        refs = subprocess.run(["git", "for-each-ref", "--format=%(objectname)", "refs/exps"], cwd=repo_dir,
                              capture_output=True, text=True, check=True).stdout.split()
        shown = subprocess.run(["git", "cat-file", "--batch"], cwd=repo_dir, capture_output=True, check=True,
                               input="".join(f"{rev}:dvc.lock\n" for rev in ["HEAD", *refs]).encode()).stdout
    except (OSError, subprocess.CalledProcessError):
        return
    at = 0
    while at < len(shown):
        header_end = shown.index(b"\n", at)
        header = shown[at:header_end].split()
        at = header_end + 1
        if len(header) == 3 and header[1] == b"blob":  # `<oid> blob <size>`, then the content and a newline
            size = int(header[2])
            yield _yaml_or_none(shown[at:at + size].decode("utf-8", errors="replace"))
            at += size + 1


def _run_cache_entries(repo_dir: Path) -> Iterator[Any]:
    """Every entry of DVC's run cache (<cache>/runs/<xx>/<stage key>/<run key>): the deps and outs of a stage run,
    read one at a time (a lookup that stops early reads none it does not need)."""
    repo = _dvc_repo(str(repo_dir.resolve()))
    runs = Path(repo.stage_cache.cache_dir) if repo is not None else None
    if runs is None or not runs.is_dir():
        return
    for path in sorted(runs.glob("*/*/*")):
        if path.is_file():
            yield _yaml_or_none(path.read_text(encoding="utf-8", errors="replace"))


def _yaml_or_none(text: str) -> Any:
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None


@dataclass(frozen=True)
class CachedVersion:
    """One version of a file out in DVC's cache: its md5 (what names it for good) and the cached file."""

    md5: str
    path: Path


def _workspace_lock(lock_file: Path) -> Iterator[Any]:
    try:
        yield yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return


def cached_versions(out: str, lock_file: Path = Path("dvc.lock")) -> Iterator[CachedVersion]:
    """Every version of a file out that DVC's cache holds, newest first as far as it can tell: the workspace's
    dvc.lock, HEAD's and every experiment's, then the run cache (which keeps what ran even after an experiment is
    removed). Deleting the store (`rm -rf .evud`) loses nothing these hold. Listed lazily: a reader that found what
    it needs in the workspace's version asks git and the run cache nothing."""
    seen: set[str] = set()
    locks = itertools.chain(_workspace_lock(lock_file), _git_locks(repository_root()), _run_cache_entries(Path(".")))
    for lock in locks:
        for md5 in _out_hashes(lock, out):
            if md5 in seen or md5.endswith(".dir"):
                continue
            seen.add(md5)
            if (path := dvc_cache_file(md5)) is not None:
                yield CachedVersion(md5, path)


def read_json_file(path: Path) -> Any | None:
    """A JSON document, or None when it is missing or torn (a writer killed before its rename cannot tear it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
