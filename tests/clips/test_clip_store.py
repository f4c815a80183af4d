"""The clip store on its own: entries verified cheaply, edits noticed, leftovers of dead runs swept, links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from evud.clips.clip_store import ClipStore, StoredClip, link_file
from evud.core.checksums import file_digests
from tests.support.edits import after_a_ctime_tick


def stored(store: ClipStore, key: str, data: bytes) -> StoredClip:
    path = store.clip_file(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sha256 = file_digests(path, with_md5=False)[0]
    return store.commit(StoredClip(cut_key=key, sha256=sha256, size_bytes=len(data), file_start=0.0, file_end=1.0))


def test_an_unchanged_clip_is_reused_without_hashing_it_again(tmp_path: Path):
    store = ClipStore(tmp_path)
    entry = stored(store, "a" * 64, b"clip bytes")
    assert store.verified("a" * 64) == entry and entry.stat_fingerprint is not None


def test_a_linked_or_touched_but_identical_clip_is_kept_and_an_edited_one_is_never_served(tmp_path: Path):
    store = ClipStore(tmp_path)
    entry = stored(store, "a" * 64, b"clip bytes")
    path = store.clip_file(entry.cut_key)
    os.link(path, tmp_path / "data-clips-name.mp4")  # a new name changes the ctime, not the bytes: re-hashed, kept
    os.utime(path, ns=(1, 1))
    again = store.verified(entry.cut_key)
    assert again is not None and again.stat_fingerprint != entry.stat_fingerprint
    assert store.check(entry.cut_key).edited_inode is None
    before = path.stat()
    after_a_ctime_tick(path)
    with open(tmp_path / "data-clips-name.mp4", "r+b") as f:  # edited through the other name: same size and mtime
        f.write(b"CLIP")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    checked = store.check(entry.cut_key)
    assert checked.entry is None and checked.edited_inode == (before.st_dev, before.st_ino)
    assert not path.exists(), "the store's name for the edited file is gone: nothing can serve it"
    assert (tmp_path / "data-clips-name.mp4").read_bytes() == b"CLIP bytes"  # its other names keep it
    assert store.verified(entry.cut_key) is None


def test_a_clip_whose_size_changed_or_that_is_gone_is_not_served(tmp_path: Path):
    store = ClipStore(tmp_path)
    entry = stored(store, "a" * 64, b"clip bytes")
    store.clip_file(entry.cut_key).write_bytes(b"clip bytes, longer")
    assert store.check(entry.cut_key).edited_inode is not None
    assert store.verified(entry.cut_key) is None


def test_an_entry_without_its_file_is_what_keep_local_false_leaves(tmp_path: Path):
    store = ClipStore(tmp_path)
    entry = store.drop_file(stored(store, "b" * 64, b"bytes"))
    assert not store.clip_file(entry.cut_key).exists()
    assert store.verified(entry.cut_key) == entry and not entry.has_file


def test_half_written_clips_of_dead_runs_are_swept_and_live_ones_kept(tmp_path: Path):
    store = ClipStore(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = tmp_path / "ab" / f"{'a' * 64}.{child.pid}.part"
    live = store.partial_file("c" * 64)
    for path in (dead, live):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    assert store.sweep_partials() == 1
    assert not dead.exists() and live.exists()


def test_a_link_holds_the_same_bytes_and_replaces_what_was_there(tmp_path: Path):
    source = tmp_path / "store.mp4"
    source.write_bytes(b"the clip")
    dest = tmp_path / "data/clips/v/c/a/0.mp4"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"an older clip")
    link_file(source, dest)
    assert dest.read_bytes() == b"the clip"
    assert [p.name for p in dest.parent.iterdir()] == ["0.mp4"]
