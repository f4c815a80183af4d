"""The clip store: every clip ever cut, by cut key, outside every DVC out (`<EVUD_STORE>/clips/`).

A worker cuts straight into the store and commits an entry (`<key>.json`, written atomically) the moment
the clip is complete, so a kill loses at most the clips in flight and no DVC operation can take a finished
clip away. `data/clips/` (the versioned out) is then filled with links to the store: a reflink where the
file system can clone, else a hard link, else a copy. With `clip.keep_local=false` the store keeps the
entry (checksums, spans) without the file once its GCS copy is verified.

A reused clip is verified cheaply: the stored file's stat fingerprint (size, mtime, inode, ctime) against the one
recorded when it was last hashed, and a re-hash only when it differs. The ctime is what no tool can set back: an
in-place edit (root ignores the 0444 mode) of a hard-linked clip in data/clips writes the store's file and DVC's cache
object too, and a careful editor keeps the size and the mtime. A clip whose bytes are no longer those cut for it is
never served: its store name is removed at once (the edited file is left to the names that still hold it) and it is
cut again into a new file.

Runs sharing the store at once (queued experiments: `dvc queue start -j 2`) claim each clip before cutting it
(evud.core.store.Claims): the second waits for the clip the first is cutting, so each is cut once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from dataclasses import dataclass
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
    stat_fingerprint: tuple[int, int, int, int] | None = None  # of the stored file when last hashed (file_fingerprint)


def file_fingerprint(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What changes whenever a file's bytes may have: size, mtime, inode and ctime (which no tool can set back)."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)


@dataclass(frozen=True)
class Checked:
    """A store entry as checked against its file: the entry to use (None: cut the clip), and whether the file was
    found edited (its inode, which the edited bytes still hold under every other name)."""

    entry: StoredClip | None
    edited_inode: tuple[int, int] | None = None  # (st_dev, st_ino)


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
        """Record a clip whose file holds its bytes (just cut, or just hashed); returns the entry with the file's
        stat fingerprint."""
        if entry.has_file:
            stat = self.clip_file(entry.cut_key).stat()
            entry = entry.model_copy(update={"stat_fingerprint": file_fingerprint(stat)})
        write_atomic(self._entry_path(entry.cut_key), entry.model_dump_json().encode())
        return entry

    def verified(self, key: str) -> StoredClip | None:
        """The entry, if its file (when it has one) still holds the bytes it recorded; None otherwise."""
        return self.check(key).entry

    def check(self, key: str) -> Checked:
        """The entry, checked against its file by stat fingerprint (re-hashed only when it changed). A file whose
        bytes are not those the entry records loses its store name at once: it is never served again."""
        entry = self.get(key)
        if entry is None or not entry.has_file:
            return Checked(entry)
        path = self.clip_file(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return Checked(None)
        if file_fingerprint(stat) == entry.stat_fingerprint:
            return Checked(entry)
        if stat.st_size == entry.size_bytes and file_digests(path, with_md5=False)[0] == entry.sha256:
            return Checked(self.commit(entry))  # linked, touched or chmod'ed, same bytes
        path.unlink(missing_ok=True)  # edited or damaged: its other names (data/clips, DVC's cache) keep the inode
        return Checked(None, edited_inode=(stat.st_dev, stat.st_ino))

    def refresh(self, entry: StoredClip) -> StoredClip:
        """Remember the file's fingerprint after this run linked it (a new link changes its ctime, not its bytes)."""
        if not entry.has_file:
            return entry
        try:
            now = file_fingerprint(self.clip_file(entry.cut_key).stat())
        except FileNotFoundError:
            return entry
        return entry if now == entry.stat_fingerprint else self.commit(entry)

    def drop_file(self, entry: StoredClip) -> StoredClip:
        """Keep the entry, remove the local file (its verified GCS copy is the clip now)."""
        entry = self.commit(entry.model_copy(update={"has_file": False, "stat_fingerprint": None}))
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
