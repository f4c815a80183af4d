"""The export's inputs: the dataset (data/ego4d_vqa_gemini.json) joined to its clips in the manifest
(data/clips.jsonl), one item per record, checked before anything is written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from evud.core.errors import UserError
from evud.core.jsonl import read_jsonl
from evud.core.records import ClipRecord, ClipStatus, LlavaRecord


class ExportError(UserError):
    """The inputs cannot make a consistent export (a record without its clip, a clip without a file or a URI)."""


@dataclass(frozen=True)
class ExportItem:
    """One record of the dataset with the manifest line of its clip (`record.id == clip.key`)."""

    record: LlavaRecord
    clip: ClipRecord

    @property
    def clip_path(self) -> str:
        return self.clip.clip_path or ""


def read_dataset(path: Path) -> list[LlavaRecord]:
    with open(path, encoding="utf-8") as f:
        return [LlavaRecord.model_validate(item) for item in json.load(f)]


def read_manifest(path: Path) -> list[ClipRecord]:
    return [ClipRecord.model_validate(line) for line in read_jsonl(path)]


def check_clip(clip: ClipRecord) -> None:
    """A clip the export can describe: a path inside the clips folder, a checksum, a window."""
    missing = [name for name in ("clip_path", "sha256", "window_start", "window_end", "duration")
               if getattr(clip, name) is None]
    if missing:
        raise ExportError(f"clip {clip.key}: the manifest line has no {', '.join(missing)}; "
                          "run prepare again (`dvc repro prepare`)")
    path = PurePosixPath(clip.clip_path)
    if path.is_absolute() or ".." in path.parts:
        raise ExportError(f"clip {clip.key}: clip_path {clip.clip_path!r} is not a path inside the clips folder")


def join_clips(dataset: list[LlavaRecord], manifest: list[ClipRecord]) -> list[ExportItem]:
    """Each record with its clip's manifest line, in the order of the ids (the window index as a number)."""
    clips = {clip.key: clip for clip in manifest if clip.status is ClipStatus.ok}
    items = []
    for record in dataset:
        clip = clips.get(record.id)
        if clip is None:
            raise ExportError(f"record {record.id}: no ok clip with this key in the manifest; the dataset and the "
                              "manifest come from different runs (run `dvc repro`)")
        check_clip(clip)
        items.append(ExportItem(record, clip))
    return sorted(items, key=lambda item: item.clip.order)
