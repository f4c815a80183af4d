"""In-place edits of a file, as root (who ignores the 0444 mode) makes them with an editor or a careful tool."""

from __future__ import annotations

import os
from pathlib import Path


def after_a_ctime_tick(path: Path) -> None:
    """Return once the file system's clock has moved past `path`'s ctime (it ticks coarsely, every few ms): an edit
    made now gives the file a ctime of its own, as any edit made by a person does. Waits on the clock, not on time."""
    probe = path.with_name(f".{path.name}.tick")
    try:
        while True:
            probe.touch()
            if probe.stat().st_ctime_ns > path.stat().st_ctime_ns:
                return
    finally:
        probe.unlink(missing_ok=True)


def edit_in_place(path: Path, keep_size_and_mtime: bool) -> None:
    """Write into the file's own inode, so every hard link to it (the clip store's, DVC's cache object) changes too.
    A careful tool keeps the size and the mtime: only the ctime, which no tool can set back, tells."""
    before = path.stat()
    after_a_ctime_tick(path)
    with open(path, "r+b") as f:
        f.seek(before.st_size // 2 if keep_size_and_mtime else before.st_size)
        f.write(b"edited")
    if keep_size_and_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
