"""The clip store: every clip ever cut, by cut key, outside every DVC out (`<EVUD_STORE>/clips/`).

A worker cuts straight into the store and commits an entry (`<key>.json`, written atomically) the moment
the clip is complete, so a kill loses at most the clips in flight and no DVC operation can take a finished
clip away. `data/clips/` (the versioned out) is then filled with links to the store: a reflink where the
file system can clone, else a hard link, else a copy. With `clip.keep_local=false` the store keeps the
entry (checksums, spans) without the file once its GCS copy is verified.

A reused clip is verified cheaply, as DVC's own state does: size and mtime against the entry, and a
re-hash only when they differ (a hard-linked clip edited in data/clips changes the store's file too);
a clip whose bytes changed is cut again.

Runs sharing the store at once (queued experiments: `dvc queue start -j 2`) claim each clip before cutting it
(evud.core.store.Claims): the second waits for the clip the first is cutting, so each is cut once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

from pydantic import BaseModel

from evud.core.checksums import file_digests
from evud.core.store import Claims, pid_alive, read_json_file, write_atomic

_FICLONE = 0x40049409  # Linux ioctl: clone a file's extents (reflink) on btrfs, XFS, ...
_NO_CLONE = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM, errno.ENOSYS}


class StoredClip(BaseModel):
    """A finished cut: the clip's checksums and what its file holds."""

    cut_key: str
    sha256: str
    md5_b64: str | None = None  # what GCS reports as md5Hash (computed when uploads need it)
    size_bytes: int
    file_start: float  # source time of the first frame physically in the file
    file_end: float
    has_file: bool = True  # false once keep_local=false removed the local copy after a verified upload
    mtime_ns: int | None = None  # of the stored file when last hashed


class ClipStore:
    def __init__(self, root: Path):
        self.root = root
        self.claims = Claims(root / "claims")

    def clip_file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.mp4"

    def _entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> StoredClip | None:
        data = read_json_file(self._entry_path(key))
        return StoredClip.model_validate(data) if isinstance(data, dict) else None

    def commit(self, entry: StoredClip) -> StoredClip:
        """Record a finished clip (its file already in place); returns the entry with the file's mtime."""
        if entry.has_file:
            entry = entry.model_copy(update={"mtime_ns": self.clip_file(entry.cut_key).stat().st_mtime_ns})
        write_atomic(self._entry_path(entry.cut_key), entry.model_dump_json().encode())
        return entry

    def verified(self, key: str) -> StoredClip | None:
        """The entry, if its file (when it has one) still holds the bytes it recorded; None otherwise."""
        entry = self.get(key)
        if entry is None or not entry.has_file:
            return entry
        try:
            stat = self.clip_file(key).stat()
        except FileNotFoundError:
            return None
        if stat.st_size == entry.size_bytes and stat.st_mtime_ns == entry.mtime_ns:
            return entry
        if stat.st_size != entry.size_bytes or file_digests(self.clip_file(key), with_md5=False)[0] != entry.sha256:
            return None  # edited or damaged: cut again
        return self.commit(entry)  # touched but identical: remember the new mtime

    def drop_file(self, entry: StoredClip) -> StoredClip:
        """Keep the entry, remove the local file (its verified GCS copy is the clip now)."""
        entry = self.commit(entry.model_copy(update={"has_file": False, "mtime_ns": None}))
        self.clip_file(entry.cut_key).unlink(missing_ok=True)
        return entry

    def partial_file(self, key: str) -> Path:
        """Where a worker writes a clip being cut; the pid tells a leftover of a dead run from work in progress."""
        return self.root / key[:2] / f"{key}.{os.getpid()}.part"

    def sweep_partials(self) -> int:
        """Remove clips left half-written by runs that died; returns how many."""
        removed = 0
        for path in self.root.glob("*/*.part"):
            pid = path.name.rsplit(".", 2)[-2]
            if not pid.isdigit() or not pid_alive(int(pid)):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def link_file(src: Path, dest: Path) -> None:
    """Make dest hold src's bytes without copying them where possible: reflink, else hard link, else copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    if not _reflink(src, tmp):
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _reflink(src: Path, dest: Path) -> bool:
    try:
        with open(src, "rb") as source, open(dest, "wb") as target:
            fcntl.ioctl(target.fileno(), _FICLONE, source.fileno())
        return True
    except OSError as err:
        dest.unlink(missing_ok=True)
        if err.errno in _NO_CLONE:
            return False
        raise
