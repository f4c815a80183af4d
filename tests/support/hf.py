"""Hugging Face exports, read the way their users read them: with `datasets` itself, the video column not decoded
(decoding needs torchcodec and torch, which are not installed here). `assert_export_loads` checks what an export
promises, for any source's sample; the builders make export inputs without a pipeline run."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import av
import yaml

from evud.core.params import PostParams
from evud.core.records import ClipRecord, QAPair
from evud.dataset.llava import build_record
from evud.hub.inputs import ExportItem

# `datasets` (and pyarrow with it) is imported by the functions that use it, not here: every pytest-xdist worker
# imports every test module at collection, and `datasets` alone costs each of them half a second.

CATEGORIES = ("object recognition", "attribute recognition", "object state recognition")


def card_header(folder: Path) -> dict[str, Any]:
    """The YAML block between the `---` lines that open the card (README.md)."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "the card does not open with a YAML header"
    header, _, _ = text[len("---\n"):].partition("\n---\n")
    return yaml.safe_load(header)


def declared_features(folder: Path) -> Any:
    """The card's features, as `datasets` reads them (a datasets.Features)."""
    import datasets

    return datasets.Features._from_yaml_list(card_header(folder)["dataset_info"]["features"])


def metadata_rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]


def inferred_features(folder: Path) -> Any:
    """What `datasets` infers from metadata.jsonl alone (as for a card without features), `file_name` loaded as the
    Video column it names: an all-null column would come out as type null here, a whole-number float as int64."""
    import datasets
    import pyarrow.json

    inferred = datasets.Features.from_arrow_schema(pyarrow.json.read_json(folder / "metadata.jsonl").schema)
    return datasets.Features({("video" if name == "file_name" else name): (datasets.Video() if name == "file_name"
                                                                            else feature)
                              for name, feature in inferred.items()})


def clip_seconds(path: Path) -> tuple[float, float]:
    """(duration of the clip's video stream, one frame period), read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        seconds = float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6
        return seconds, 1 / float(stream.average_rate)


def assert_clip_is_the_rows(row: dict[str, Any]) -> None:
    """The row's video file exists, has the row's checksum, lasts the span the row says it holds, and that span holds
    the row's window."""
    path = Path(row["video"]["path"])
    assert path.is_file(), f"{row['id']}: {path} is not a file"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row["clip_sha256"], f"{row['id']}: {path} is another clip"
    seconds, frame = clip_seconds(path)
    span = row["clip_end"] - row["clip_start"]
    assert abs(seconds - span) <= 1.5 * frame, f"{row['id']}: {path} holds {seconds:.3f} s, the row says {span:.3f} s"
    assert row["clip_start"] <= row["window_start"] + frame and row["clip_end"] >= row["window_end"] - frame, \
        f"{row['id']}: the file [{row['clip_start']}, {row['clip_end']}] does not hold the window"


def assert_export_loads(folder: Path, expected_ids: list[str], cache_dir: Path | None = None) -> None:
    """`datasets.load_dataset` reads the export: one row per expected id, the features the card declares (which are
    also what the metadata alone gives: no null column), every clip a real file with the row's checksum and window
    (files), or a gs:// URI (URIs). The card names every column of metadata.jsonl."""
    import datasets

    rows = metadata_rows(folder)
    columns = list(rows[0])
    assert all(list(row) == columns for row in rows), "metadata.jsonl rows have different columns"
    declared = declared_features(folder)
    assert list(declared) == ["video" if name == "file_name" else name for name in columns], \
        "the card's features do not name metadata.jsonl's columns, in order"
    inferred = inferred_features(folder)
    assert inferred == declared and list(inferred) == list(declared), f"metadata gives {inferred}, card {declared}"
    with tempfile.TemporaryDirectory() as scratch:
        dataset = datasets.load_dataset(str(folder), split="train", cache_dir=str(cache_dir or scratch))
        assert sorted(dataset["id"]) == sorted(expected_ids) and len(dataset) == len(expected_ids), \
            f"load_dataset gave the rows {sorted(dataset['id'])}; the folder holds {sorted(expected_ids)}"
        assert dataset.features == declared and list(dataset.features) == list(declared)
        if isinstance(declared["video"], datasets.Video):
            for row in dataset.cast_column("video", datasets.Video(decode=False)):
                assert_clip_is_the_rows(row)
        else:
            assert all(uri.startswith("gs://") for uri in dataset["video"]), dataset["video"]


# --- Export inputs written by hand ----------------------------------------------------------------------------------


def manifest_clip(index: int, video: str = "v1", local: bool = True, **fields: Any) -> ClipRecord:
    """An ok manifest line of a 5 s window; `local=False`: uploaded to GCS and not kept locally."""
    values: dict[str, Any] = dict(
        video_uid=video, clip_uid="c1", annotation_uid="a1", language_query_index=index, status="ok",
        clip_path=f"{video}/c1/a1/{index}.mp4", window_start=10.0, window_end=15.0, duration=5.0,
        sha256=hashlib.sha256(f"{video}-{index}".encode()).hexdigest(), query=f"where is thing {index}?",
        template="Objects: Where is object X?", cut_mode="exact")
    if not local:
        values["clip_uri"] = f"gs://bucket/clips/{values['clip_path']}"
    return ClipRecord(**{**values, **fields})


def export_item(clip: ClipRecord, verdict: str | None = None, human: bool = False) -> ExportItem:
    """The clip with a record of three QA pairs, as postprocess builds it."""
    pairs = [QAPair(**{"category": category, "question": f"What is {n}?", "short answer": f"Thing {n}",
                       "verdict": verdict}) for n, category in enumerate(CATEGORIES)]
    return ExportItem(build_record(clip, pairs, PostParams(), human_annotated=human), clip)


def write_export_inputs(root: Path, items: list[ExportItem]) -> tuple[Path, Path, Path]:
    """(dataset, manifest, clips dir) holding the items, as postprocess and prepare write them (no clip files)."""
    dataset, manifest, clips_dir = root / "ego4d_vqa_gemini.json", root / "clips.jsonl", root / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    dataset.write_text(json.dumps([item.record.to_json_dict() for item in items], indent=2))
    manifest.write_text("".join(item.clip.model_dump_json() + "\n" for item in items))
    return dataset, manifest, clips_dir
