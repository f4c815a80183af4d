"""An export built by the library from files written by hand: clips kept only in GCS (clip.keep_local=false) give a
`video` column of gs:// URIs that `datasets` loads; the same inputs give the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from evud.core.params import ExportParams
from evud.hub.card import CardFacts
from evud.hub.export import ExportInputs, build_export
from evud.hub.inputs import ExportError
from evud.hub.layout import ClipKind
from tests.support.hf import assert_export_loads, export_item, manifest_clip, metadata_rows, write_export_inputs
from tests.support.repo import PARAMS

FACTS = CardFacts(source="ego4d_nlq", model="gemini-3.8-flash", prompt_name="evud", export=ExportParams())


def uploaded_only(root: Path) -> ExportInputs:
    """Three clips uploaded to GCS and not kept locally, one without query text, one verified."""
    items = [export_item(manifest_clip(0, local=False)), export_item(manifest_clip(1, local=False, query=None)),
             export_item(manifest_clip(2, video="v2", local=False), verdict="grounded")]
    return ExportInputs(*write_export_inputs(root, items))


def test_clips_kept_only_in_gcs_export_as_a_video_column_of_uris_that_loads(tmp_path: Path):
    inputs = uploaded_only(tmp_path / "in")
    report = build_export(inputs, tmp_path / "hf", FACTS)
    assert (report.rows, report.kind) == (3, ClipKind.uris)
    assert not (tmp_path / "hf/clips").exists()
    rows = metadata_rows(tmp_path / "hf")
    assert rows[0]["video"] == "gs://bucket/clips/v1/c1/a1/0.mp4" and "file_name" not in rows[0]
    assert rows[1]["text"] == ""
    assert_export_loads(tmp_path / "hf", [row["id"] for row in rows], cache_dir=tmp_path / "hf-cache")


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path):
    inputs = uploaded_only(tmp_path / "in")
    build_export(inputs, tmp_path / "first", FACTS)
    build_export(inputs, tmp_path / "second", FACTS)
    for name in ("metadata.jsonl", "README.md"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


def test_nothing_is_written_when_a_clip_has_neither_file_nor_uri(tmp_path: Path):
    items = [export_item(manifest_clip(0, local=False)), export_item(manifest_clip(1))]
    inputs = ExportInputs(*write_export_inputs(tmp_path / "in", items))
    with pytest.raises(ExportError, match=f"clip {items[1].record.id} has neither a local file"):
        build_export(inputs, tmp_path / "hf", FACTS)
    assert not (tmp_path / "hf").exists()


def test_a_second_export_with_other_rows_loads_its_own_rows_from_a_shared_cache(tmp_path: Path):
    """`datasets` keys its cache on the card: two exports whose cards were the same (a re-export, another project's
    export in a folder of the same name) shared one cache entry and the second load returned the first one's rows."""
    first = [export_item(manifest_clip(i, local=False)) for i in range(3)]
    second = [export_item(manifest_clip(i, video="v9", local=False)) for i in range(3)]
    cache = tmp_path / "hf-cache"  # one cache for both loads, as a user's ~/.cache/huggingface
    for name, items in (("first", first), ("second", second)):
        inputs = ExportInputs(*write_export_inputs(tmp_path / name / "in", items))
        build_export(inputs, tmp_path / name / "hf", FACTS)
        assert_export_loads(tmp_path / name / "hf", [item.record.id for item in items], cache_dir=cache)


def test_an_export_of_no_record_exits_1_with_one_line_and_writes_no_folder(tmp_path: Path):
    """A folder of 0 rows is one `datasets.load_dataset` cannot read: the stage refuses it, as postprocess does."""
    from stages import export as export_stage

    dataset, manifest, clips_dir = write_export_inputs(tmp_path / "in", [])
    out = tmp_path / "hf"
    with pytest.raises(SystemExit) as done:
        export_stage.main(["--dataset", str(dataset), "--manifest", str(manifest), "--clips-dir", str(clips_dir),
                           "--out", str(out), "--params", str(PARAMS)])
    message = str(done.value.code)
    assert message.startswith("export: ") and "no record" in message and "\n" not in message
    assert not out.exists()
