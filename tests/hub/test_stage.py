"""The `export` stage as DVC runs it on the bundled sample: `datasets` loads data/hf, and its clips are the
pipeline's clips, linked, not copied."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.hf import assert_export_loads, card_header, metadata_rows


def dataset_ids(repo: Path) -> list[str]:
    return [record["id"] for record in json.loads((repo / "data/ego4d_vqa_gemini.json").read_text())]


def test_the_sample_export_loads_one_row_per_record_with_the_declared_features(reproduced_sample: Path,
                                                                                tmp_path: Path):
    folder = reproduced_sample / "data/hf"
    assert_export_loads(folder, dataset_ids(reproduced_sample), cache_dir=tmp_path / "hf-cache")
    assert card_header(folder)["license"] == "other"  # the sample is Ego4D NLQ: the Ego4D license


def test_the_exported_clips_are_the_pipelines_clip_files(golden_sample: Path):
    """Read only, in the reproduced repository itself: its copies (reproduced_sample) do not keep hard links."""
    for row in metadata_rows(golden_sample / "data/hf"):
        exported = golden_sample / "data/hf" / row["file_name"]
        clip = golden_sample / "data/clips" / Path(row["file_name"]).relative_to("clips")
        assert exported.stat().st_ino == clip.stat().st_ino, f"{exported} is a copy of {clip}"
