"""The export folder: clip files as hard links (or copies across devices) or gs:// URIs, one kind per export."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from evud.hub.inputs import ExportError, ExportItem
from evud.hub.layout import ClipKind, clip_kind, data_files, link_clip, place_clips, video_value
from tests.support.hf import export_item, manifest_clip


def with_file(clips_dir: Path, item: ExportItem, data: bytes = b"mp4 bytes") -> ExportItem:
    path = clips_dir / item.clip_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ExportItem(item.record, item.clip.model_copy(update={"size_bytes": len(data)}))


def test_every_clip_local_gives_files_named_relative_to_the_folder(tmp_path: Path):
    items = [with_file(tmp_path, export_item(manifest_clip(i))) for i in range(2)]
    assert clip_kind(items, tmp_path) is ClipKind.files
    assert video_value(items[0], ClipKind.files) == "clips/v1/c1/a1/0.mp4"
    assert data_files(ClipKind.files, items) == ["metadata.jsonl", "clips/**/*.mp4"]


def test_no_clip_local_and_every_clip_uploaded_gives_uris(tmp_path: Path):
    items = [export_item(manifest_clip(i, local=False)) for i in range(2)]
    assert clip_kind(items, tmp_path) is ClipKind.uris
    assert video_value(items[1], ClipKind.uris) == "gs://bucket/clips/v1/c1/a1/1.mp4"
    assert data_files(ClipKind.uris, items) == ["metadata.jsonl"]


def test_a_local_clip_beside_one_neither_local_nor_uploaded_fails_naming_it(tmp_path: Path):
    local = with_file(tmp_path, export_item(manifest_clip(0)))
    lost = export_item(manifest_clip(1))
    with pytest.raises(ExportError, match=f"clip {lost.record.id} has neither a local file .* nor a gs:// copy"):
        clip_kind([local, lost], tmp_path)


def test_an_uploaded_clip_beside_a_local_one_never_uploaded_fails_naming_both(tmp_path: Path):
    local = with_file(tmp_path, export_item(manifest_clip(0)))
    remote = export_item(manifest_clip(1, local=False))
    with pytest.raises(ExportError, match=f"clip {remote.record.id} is only in GCS .* and clip "
                                          f"{local.record.id} has no gs:// copy"):
        clip_kind([local, remote], tmp_path)


def test_clips_are_hard_links_to_the_pipelines_clips(tmp_path: Path):
    item = with_file(tmp_path / "clips", export_item(manifest_clip(0)))
    report = place_clips([item], ClipKind.files, tmp_path / "clips", tmp_path / "hf")
    assert (report.linked, report.copied, report.bytes, report.copied_bytes) == (1, 0, 9, 0)
    assert (tmp_path / "hf/clips/v1/c1/a1/0.mp4").stat().st_ino == (tmp_path / "clips/v1/c1/a1/0.mp4").stat().st_ino


def test_a_clip_on_another_device_is_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def cross_device(src, dest):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", cross_device)
    (tmp_path / "a.mp4").write_bytes(b"clip")
    assert link_clip(tmp_path / "a.mp4", tmp_path / "out/a.mp4") is False
    assert (tmp_path / "out/a.mp4").read_bytes() == b"clip"


def test_a_clip_of_an_earlier_export_is_not_left_behind(tmp_path: Path):
    stale = tmp_path / "hf/clips/old/c/a/0.mp4"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    item = with_file(tmp_path / "clips", export_item(manifest_clip(0)))
    place_clips([item], ClipKind.files, tmp_path / "clips", tmp_path / "hf")
    assert not stale.exists() and (tmp_path / "hf/clips/v1/c1/a1/0.mp4").is_file()


def test_a_local_clip_of_another_size_than_its_manifest_line_fails_naming_it(tmp_path: Path):
    item = with_file(tmp_path / "clips", export_item(manifest_clip(0)))
    (tmp_path / "clips" / item.clip_path).write_bytes(b"edited in place")
    with pytest.raises(ExportError, match=f"clip {item.record.id}: .* has 15 bytes, the manifest says 9"):
        place_clips([item], ClipKind.files, tmp_path / "clips", tmp_path / "hf")
