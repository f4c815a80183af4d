"""The export run: read the dataset and the manifest, then write the folder (clips, metadata.jsonl, README.md)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from evud.core.store import write_atomic
from evud.hub.card import CardFacts, content_version, dataset_card
from evud.hub.inputs import ExportError, join_clips, read_dataset, read_manifest
from evud.hub.layout import (CARD_FILE, METADATA_FILE, ClipKind, LinkReport, clip_kind, data_files, place_clips,
                             video_value)
from evud.hub.rows import metadata_line, metadata_row


@dataclass(frozen=True)
class ExportInputs:
    """The pipeline files an export is made of."""

    dataset: Path  # data/ego4d_vqa_gemini.json
    manifest: Path  # data/clips.jsonl
    clips_dir: Path  # data/clips


@dataclass
class ExportReport:
    rows: int
    kind: ClipKind
    clips: LinkReport


def build_export(inputs: ExportInputs, out_dir: Path, facts: CardFacts) -> ExportReport:
    """Write the export folder; the same inputs give the same bytes (rows in id order, columns in declared order)."""
    items = join_clips(read_dataset(inputs.dataset), read_manifest(inputs.manifest))
    if not items:  # `datasets.load_dataset` cannot read a folder of no rows: nothing to share, and DVC must not lock it
        raise ExportError(f"{inputs.dataset} holds no record, so there is nothing to export: run postprocess again "
                          "(`dvc repro postprocess`) and see data/rejects.jsonl for why each clip was left out")
    kind = clip_kind(items, inputs.clips_dir)
    rows = [metadata_row(item, facts.source) for item in items]
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = place_clips(items, kind, inputs.clips_dir, out_dir)
    lines = [metadata_line(kind.column, video_value(item, kind), row) for item, row in zip(items, rows)]
    metadata = "".join(f"{line}\n" for line in lines).encode("utf-8")
    write_atomic(out_dir / METADATA_FILE, metadata)
    card = dataset_card(rows, kind, data_files(kind, items), facts, content_version(metadata))
    write_atomic(out_dir / CARD_FILE, card.encode("utf-8"))
    return ExportReport(rows=len(rows), kind=kind, clips=clips)


def run(inputs: ExportInputs, out_dir: Path, facts: CardFacts) -> ExportReport:
    """Build the export and say what it holds."""
    report = build_export(inputs, out_dir, facts)
    if report.kind is ClipKind.files:
        clips = (f"{report.clips.linked + report.clips.copied} clips ({report.clips.bytes / 1e6:.1f} MB): "
                 f"{report.clips.linked} hard-linked, {report.clips.copied} copied "
                 f"({report.clips.copied_bytes / 1e6:.1f} MB new on disk)")
    else:
        clips = "clips by gs:// URI (none kept locally)"
    print(f"export: {report.rows} rows, {clips} -> {out_dir}", file=sys.stderr)
    return report
