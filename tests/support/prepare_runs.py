"""prepare run in-process the way the clip tests look at it: failed clips accepted, records returned."""

from __future__ import annotations

import os
from pathlib import Path

from evud.clips import prepare
from evud.core.progress import StageIncomplete
from evud.core.jsonl import read_jsonl
from evud.core.params import ClipParams, DataParams, GcsParams
from evud.core.records import ClipRecord


def prepare_run(tmp: Path, data: DataParams, clip: ClipParams | None = None, gcs: GcsParams | None = None,
                workers: int = 2) -> prepare.PrepareRun:
    """prepare in `tmp`, accepting failed clips (tests look at them), with the test's own clip store."""
    os.environ["EVUD_ALLOW_FAILED"] = "1"
    try:
        return prepare.run(data, clip or ClipParams(), gcs or GcsParams(), tmp / "clips", tmp / "clips.jsonl",
                           tmp / "metrics.json", workers)
    except StageIncomplete:  # nothing succeeded: the manifest says why
        records = [ClipRecord.model_validate(r) for r in read_jsonl(tmp / "clips.jsonl")]
        return prepare.PrepareRun(records, {})
    finally:
        del os.environ["EVUD_ALLOW_FAILED"]
