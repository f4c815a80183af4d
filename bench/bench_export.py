"""The Hugging Face export at EVUD's size: build time, folder size, `datasets.load_dataset` time, and the naive way
(the LLaVA JSON loaded as it is) in the same run.

    python -m bench.bench_export            # about half a minute on 2 cores

1. Generates a dataset and a manifest of 5 records (the bundled sample's size) and of 13,789 (EVUD's), 7 QA pairs
   each; the clip files are 8 real little videos, hard-linked under every clip path (no bytes per clip).
2. Builds each export with evud.hub (the stage's own code): time, metadata.jsonl and card sizes, bytes added on disk.
3. Loads it with `datasets.load_dataset(folder, split="train")` into a fresh cache, then again (cached), and reads
   every row's clip path (`Video(decode=False)`, no decoding).
4. Naive, on the same records: the LLaVA JSON with `load_dataset("json", ...)`: one file (it loads, but the videos are
   strings under a root that is not there, and nothing says what the columns are), and the same records in two files
   whose columns differ, as the published EVUD files do (the cast error that breaks the Hub's viewer).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.synthetic import llava_record, qa_pairs, uid, words
from evud.core.params import ExportParams
from evud.hub.card import CardFacts
from evud.hub.export import ExportInputs, build_export
from tests.support.numbered_video import make_numbered_video

SIZES = (5, 13_789)
REAL_CLIPS = 8
FACTS = CardFacts(source="ego4d_nlq", model="gemini-3.8-flash", prompt_name="evud", export=ExportParams())


def real_clips(root: Path) -> list[tuple[Path, str]]:
    """A few real little clips (numbered test videos) and their sha256."""
    clips = []
    for n in range(REAL_CLIPS):
        path = root / f"real-{n}.mp4"
        make_numbered_video(path, seconds=4 + n, fps=10)
        clips.append((path, hashlib.sha256(path.read_bytes()).hexdigest()))
    return clips


def synthetic_run(root: Path, size: int, clips: list[tuple[Path, str]]) -> ExportInputs:
    """A dataset of `size` records of 7 pairs and its manifest; each clip path a hard link to a real clip."""
    rng = random.Random(size)
    inputs = ExportInputs(root / "dataset.json", root / "clips.jsonl", root / "clips")
    videos = [uid(rng) for _ in range(1_300)]
    dataset, manifest = [], []
    for n in range(size):
        ids = {"video_uid": rng.choice(videos), "clip_uid": uid(rng), "annotation_uid": uid(rng),
               "language_query_index": n % 5}
        key = "-".join(str(v) for v in ids.values())
        clip_path = f"{ids['video_uid']}/{ids['clip_uid']}/{ids['annotation_uid']}/{ids['language_query_index']}.mp4"
        real, sha256 = clips[n % len(clips)]
        (inputs.clips_dir / clip_path).parent.mkdir(parents=True, exist_ok=True)
        os.link(real, inputs.clips_dir / clip_path)
        start = float(rng.randint(0, 400))
        end = start + 4 + n % len(clips)
        manifest.append({**ids, "status": "ok", "clip_path": clip_path, "sha256": sha256, "window_start": start,
                         "window_end": end, "duration": end - start, "size_bytes": real.stat().st_size,
                         "query": f"where was the {words(rng, 1, 2)} before I {words(rng, 2, 5)}?" if n % 9 else None,
                         "template": "Objects: Where is object X before / after event Y?"})
        pairs = qa_pairs(rng, ("grounded", "blind_answerable", "unverified"))
        dataset.append(llava_record(key, ids, clip_path, end - start, n, pairs))
    inputs.manifest.write_text("".join(json.dumps(line) + "\n" for line in manifest), encoding="utf-8")
    inputs.dataset.write_text(json.dumps(dataset, indent=2), encoding="utf-8")
    return inputs


def naive_files(dataset: Path, root: Path) -> dict[str, list[Path]]:
    """The same records as LLaVA JSON files the naive way publishes them: two files whose columns differ (the first
    written before `human_annotated` and the pairs' `verdict` existed), and two files where a column is null in every
    row of the first (`human_annotated` unknown there). `datasets` takes a JSON dataset's features from its first
    file: a later file that adds a column, or a value where the first had only nulls, fails to cast."""
    records = json.loads(dataset.read_text())
    half = len(records) // 2
    older = [{k: v for k, v in r.items() if k != "human_annotated"} for r in records[:half]]
    for record in older:
        record["category_question_answer_tuples"] = [{k: v for k, v in p.items() if k != "verdict"}
                                                     for p in record["category_question_answer_tuples"]]
    unknown = [{**r, "human_annotated": None} for r in records[:half]]
    files = {}
    for name, first in (("columns differ", older), ("a null column", unknown)):
        parts = [root / name.replace(" ", "_") / f"part-{n}.json" for n in (1, 2)]
        parts[0].parent.mkdir(parents=True)
        parts[0].write_text(json.dumps(first))
        parts[1].write_text(json.dumps(records[half:]))
        files[name] = parts
    return files


def naive_load(files: list[Path], cache: Path) -> tuple[float, str]:
    """Seconds to load (or fail), and what the user sees."""
    import datasets

    started = time.monotonic()
    try:
        datasets.load_dataset("json", data_files=[str(f) for f in files], split="train", cache_dir=str(cache))
        outcome = "loaded"
    except Exception as err:  # what a user of such files sees
        cause = err.__cause__ or err
        outcome = f"{type(err).__name__} ({str(cause).splitlines()[0][:80]})"
    return time.monotonic() - started, outcome


def timed(work: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = work()
    return time.monotonic() - started, result


def new_clip_bytes(folder: Path, clip_inodes: set[int]) -> int:
    """Bytes of the export's clip files that are not one of the pipeline's clip files under another name."""
    files = [p for p in (folder / "clips").rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.stat().st_ino not in clip_inodes)


def measure(size: int, clips: list[tuple[Path, str]], work: Path) -> dict[str, Any]:
    import datasets

    inputs = synthetic_run(work / "run", size, clips)
    folder = work / "hf"
    build_s, report = timed(lambda: build_export(inputs, folder, FACTS))
    figures: dict[str, Any] = {"build_s": build_s, "linked": report.clips.linked, "copied": report.clips.copied,
                               "metadata_mb": (folder / "metadata.jsonl").stat().st_size / 1e6,
                               "card_kb": (folder / "README.md").stat().st_size / 1e3,
                               "new_clip_mb": new_clip_bytes(folder, {p.stat().st_ino for p, _ in clips}) / 1e6}
    cache = work / "cache"
    figures["load_s"], dataset = timed(lambda: datasets.load_dataset(str(folder), split="train", cache_dir=str(cache)))
    figures["cached_s"], _ = timed(lambda: datasets.load_dataset(str(folder), split="train", cache_dir=str(cache)))
    paths = dataset.cast_column("video", datasets.Video(decode=False))
    figures["read_s"], videos = timed(lambda: [row["path"] for row in paths["video"]])
    figures["rows"] = len(videos)
    assert all(Path(v).is_file() for v in videos[:REAL_CLIPS])
    figures["naive_one_s"], naive = timed(lambda: datasets.load_dataset(
        "json", data_files=str(inputs.dataset), split="train", cache_dir=str(work / "naive-one")))
    figures["naive_one_video"] = naive.features["video"]
    for name, files in naive_files(inputs.dataset, work).items():
        figures[f"naive {name}"] = naive_load(files, work / f"naive-{name.replace(' ', '_')}")
    return figures


def main() -> None:
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import_s, _ = timed(lambda: __import__("datasets"))
    print(f"import datasets: {import_s:.2f} s (once per process, not counted below)")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        clips = real_clips(Path(tmp))
        results = {}
        for size in SIZES:
            work = Path(tmp) / f"n{size}"
            results[size] = measure(size, clips, work)
            shutil.rmtree(work)
    table = [("export build (evud.hub, the stage's code), s", lambda r: f"{r['build_s']:.2f}"),
             ("clips hard-linked / copied", lambda r: f"{r['linked']:,} / {r['copied']:,}"),
             ("new bytes of clip files (not links), MB", lambda r: f"{r['new_clip_mb']:.2f}"),
             ("metadata.jsonl, MB", lambda r: f"{r['metadata_mb']:.2f}"),
             ("README.md (card), kB", lambda r: f"{r['card_kb']:.1f}"),
             ("load_dataset(folder), fresh cache, s", lambda r: f"{r['load_s']:.2f}"),
             ("load_dataset(folder), cached, s", lambda r: f"{r['cached_s']:.2f}"),
             ("read every row's clip path (Video(decode=False)), s", lambda r: f"{r['read_s']:.2f}"),
             ("naive: load_dataset('json', the LLaVA JSON), s", lambda r: f"{r['naive_one_s']:.2f}"),
             ("naive: two files whose columns differ, s (fails)", lambda r: f"{r['naive columns differ'][0]:.2f}"),
             ("naive: two files, a column null in the first, s (fails)",
              lambda r: f"{r['naive a null column'][0]:.2f}")]
    print(f"\n{'':58}" + "".join(f"{f'{size:,} rows':>16}" for size in SIZES))
    for label, cell in table:
        print(f"{label:58}" + "".join(f"{cell(r):>16}" for r in results.values()))
    last = results[SIZES[-1]]
    print(f"\nnaive, one file: `video` loads as {last['naive_one_video']} (a path under a root not in the data)")
    for name in ("columns differ", "a null column"):
        print(f"naive, two files, {name}: {last[f'naive {name}'][1]}")


if __name__ == "__main__":
    main()
