"""The dataset browser at EVUD's size: build time, site size, page load and filter times in headless Chromium.

    python -m bench.bench_browse            # about 3 minutes on 2 cores; needs Debian's chromium + chromium-driver

1. Generates a synthetic run the size of the published EVUD data: 13,789 clips in the dataset with 7 QA pairs
   each (96,523 pairs), plus 1,500 rejected clips (with Gemini's text), 2,000 queries prepare skipped and
   3,000 dropped pairs; 8 of the clips are real little videos, so the strip path runs too.
2. Builds the site with evud.browse (the stage's own code) and prints the time, the strip rate and the size.
3. Opens it from file:// in headless Chromium (fresh profile each load) and measures, as the page does it
   (cards rendered lazily, 30 at a time) and the naive way in the same run (every matching card rendered
   into the DOM at once, `#page=1000000`): time to the first cards in the DOM and on screen, and the time
   of each filter (from the call to the next painted frame). Ours: medians of 3 loads, each in a fresh
   profile; naive: one load (it takes minutes). Filters run once per load, in the order listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.synthetic import llava_record, qa_pairs, uid, words
from evud.browse.build import SiteInputs, build_site
from evud.browse.strips import StripSettings, render_strip
from evud.core.domain import EVUD_CATEGORIES
from evud.core.params import BrowseParams
from tests.support.browser import browser_missing, chromium
from tests.support.numbered_video import make_numbered_video

ROOT = Path(__file__).resolve().parents[1]

CLIPS, REJECTED, SKIPPED, DROPPED, REAL_CLIPS = 13_789, 1_500, 2_000, 3_000, 8
LOADS = 3
HD_SECONDS = 20
CACHE = ROOT / "bench/.cache/browse"
REJECT_REASONS = ("missing_categories", "no_qa_blocks", "response_blocked", "response_failed", "no_pairs")
PAIR_REASONS = ("truncated_block", "duplicate_question", "unknown_category", "incomplete_block")
SKIP_REASONS = ("window_too_short", "window_outside_video", "empty_window", "unknown_video")
FILTERS = (("status = rejected", {"status": "rejected"}), ("category = world knowledge", {"cat": "world knowledge"}),
           ("reason = missing_categories", {"reason": "missing_categories"}),
           ("text search 'knife' (first: builds the index)", {"q": "knife"}),
           ("text search 'red cup'", {"q": "red cup"}), ("clear all filters", {}))


def synthetic_run(root: Path) -> SiteInputs:
    """The four pipeline files of a run the size of EVUD's, and a clips directory with a few real clips."""
    rng = random.Random(13789)
    inputs = SiteInputs(root / "clips.jsonl", root / "dataset.json", root / "rejects.jsonl", root / "responses.jsonl",
                        root / "clips")
    inputs.clips_dir.mkdir(parents=True, exist_ok=True)
    manifest, dataset, rejects, responses = [], [], [], []
    videos = [uid(rng) for _ in range(1_300)]
    for n in range(CLIPS + REJECTED + SKIPPED):
        ids = {"video_uid": rng.choice(videos), "clip_uid": uid(rng), "annotation_uid": uid(rng),
               "language_query_index": n % 5}
        key = "-".join(str(v) for v in ids.values())
        start = float(rng.randint(0, 400))
        end = start + rng.choice((1.0, 2.0, 4.0, 8.0, 30.0))
        record = {**ids, "query": f"where was the {words(rng, 1, 2)} before I {words(rng, 2, 5)}?",
                  "template": "Objects: Where is object X before / after event Y?", "window_start": start,
                  "window_end": end, "duration": end - start}
        if n >= CLIPS + REJECTED:
            manifest.append({**ids, "status": "skipped", "reason": f"{rng.choice(SKIP_REASONS)}: synthetic"})
            continue
        clip_path = f"{ids['video_uid']}/{ids['clip_uid']}/{ids['annotation_uid']}/{ids['language_query_index']}.mp4"
        manifest.append({**record, "status": "ok", "clip_path": clip_path, "sha256": hashlib.sha256(key.encode()).hexdigest()})
        pairs = qa_pairs(rng)
        if n < CLIPS:
            dataset.append(llava_record(key, ids, clip_path, end - start, n, pairs))
        else:
            rejects.append({"key": key, "stage": "postprocess", "scope": "clip", "reason": rng.choice(REJECT_REASONS),
                            "detail": "synthetic reject"})
            text = "\n\n".join(f"Category: {p['category']}\nQuestion: {p['question']}\nShort answer: {p['short answer']}"
                               for p in pairs[:5])
            responses.append({**ids, "request_key": key, "clip_sha256": "0" * 64, "model": "m", "backend": "replay",
                              "status": "ok", "text": text})
    for n in rng.sample(range(CLIPS), DROPPED):
        key = dataset[n]["id"]
        rejects.append({"key": key, "stage": "postprocess", "scope": "pair", "reason": rng.choice(PAIR_REASONS),
                        "category": rng.choice(EVUD_CATEGORIES), "question": f"What {words(rng, 4, 8)}?",
                        "detail": "synthetic dropped pair"})
    add_real_clips(manifest, inputs.clips_dir)
    write_lines(inputs.manifest, manifest)
    inputs.dataset.write_text(json.dumps(dataset, indent=2), encoding="utf-8")
    write_lines(inputs.rejects, rejects)
    write_lines(inputs.responses, responses)
    return inputs


def add_real_clips(manifest: list[dict[str, Any]], clips_dir: Path) -> None:
    """The first few clips get a real file (a numbered test video), so strips are drawn for them."""
    for n, record in enumerate(manifest[:REAL_CLIPS]):
        seconds = 4 + n
        path = clips_dir / record["clip_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        make_numbered_video(path, seconds=seconds, fps=10)
        record.update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), window_start=0.0,
                      window_end=float(seconds), duration=float(seconds))


def make_hd_clip(path: Path, seconds: int) -> None:
    """A clip at a real camera's size: 1280x720, 30 fps, a keyframe every 2 s, moving content."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"g": "60", "preset": "veryfast", "crf": "23"}
        ramp = np.tile(np.arange(1280, dtype=np.uint16), (720, 1))
        for i in range(seconds * 30):
            gray = ((ramp + i * 8) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.dstack([gray, gray[::-1], np.roll(gray, i, axis=0)]), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def strip_cost(path: Path) -> tuple[float, int]:
    """Seconds to draw one strip of an HD clip (median of 3), and the strip's size in bytes."""
    make_hd_clip(path, HD_SECONDS)
    times = []
    for _ in range(3):
        started = time.monotonic()
        strip = render_strip(str(path), float(HD_SECONDS), StripSettings())
        times.append(time.monotonic() - started)
    return statistics.median(times), len(strip)


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), encoding="utf-8")


def mark(driver: Any, name: str) -> float:
    return driver.execute_script(f"const m = performance.getEntriesByName('{name}'); return m.length ? m[0].startTime : null")


def timed_filter(driver: Any, values: dict[str, str]) -> float:
    """ms from the call to the next painted frame (rAF + a task: the frame with the new cards is on screen)."""
    script = ("const done = arguments[arguments.length - 1]; const t0 = performance.now();"
              "window.EVUDBrowse.setFilter(Object.assign({q: '', cat: '', status: '', reason: '', human: ''},"
              " arguments[0]));"
              "requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));")
    return driver.execute_async_script(script, values)


def measure(index: Path, fragment: str, work: Path, loads_wanted: int) -> dict[str, Any]:
    """Median figures of fresh loads of the page (a new browser profile each time)."""
    loads: list[dict[str, float]] = []
    for n in range(loads_wanted):
        profile = work / f"profile-{fragment or 'lazy'}-{n}"
        with chromium(profile, work) as driver:
            driver.set_script_timeout(300)
            driver.get(index.as_uri() + fragment)
            deadline = time.monotonic() + 300
            while mark(driver, "evud-cards-painted") is None and time.monotonic() < deadline:
                time.sleep(0.02)
            figures = {"data": mark(driver, "evud-data-loaded"), "dom": mark(driver, "evud-first-cards"), "painted": mark(driver, "evud-cards-painted"),
                       "nodes": driver.execute_script("return document.getElementsByTagName('*').length"),
                       "heap_mb": driver.execute_script("return performance.memory.usedJSHeapSize / 1e6")}
            for label, values in FILTERS:
                figures[label] = timed_filter(driver, values)
            loads.append(figures)
        shutil.rmtree(profile, ignore_errors=True)
    return {k: statistics.median(load[k] for load in loads) for k in loads[0]}


def main() -> None:
    missing = browser_missing()
    if missing:
        sys.exit(f"bench_browse: {missing}")
    os.environ.setdefault("EVUD_PROGRESS", "0")
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    started = time.monotonic()
    inputs = synthetic_run(CACHE / "run")
    print(f"generated {CLIPS:,} dataset clips / {CLIPS * 7:,} pairs, {REJECTED:,} rejected, {SKIPPED:,} skipped, "
          f"{DROPPED:,} dropped pairs in {time.monotonic() - started:.1f} s "
          f"(dataset JSON {inputs.dataset.stat().st_size / 1e6:.1f} MB)")
    site = CACHE / "browse"
    started = time.monotonic()
    report = build_site(inputs, site, BrowseParams(), None, CACHE / "store", workers=1)
    build_s = time.monotonic() - started
    print(f"build: {build_s:.1f} s ({report.strips.made} strips drawn, {len(report.strips.failed)} failed)")
    per_strip, strip_bytes = strip_cost(CACHE / "hd.mp4")
    print(f"one strip of a {HD_SECONDS} s 1280x720 30 fps H.264 clip (keyframe every 2 s): {per_strip * 1000:.0f} ms "
          f"in one process, {strip_bytes / 1e3:.1f} kB: for EVUD's 15,289 cut clips about "
          f"{per_strip * (CLIPS + REJECTED) / 60 / 2:.0f} min on 2 workers, once (then cached), and "
          f"{strip_bytes * (CLIPS + REJECTED) / 1e6:.0f} MB of strips in the site")
    data_js = (site / "data.js").stat().st_size
    print(f"site: {report.site_bytes / 1e6:.1f} MB, of which data.js {data_js / 1e6:.1f} MB "
          f"(the dataset JSON it shows: {inputs.dataset.stat().st_size / 1e6:.1f} MB)")
    with tempfile.TemporaryDirectory(prefix="bench-browse-") as tmp:
        lazy = measure(site / "index.html", "", Path(tmp), LOADS)
        naive = measure(site / "index.html", "#page=1000000", Path(tmp), 1)
    print(f"\npage in headless Chromium (ours: median of {LOADS} fresh loads, naive: 1 load; ms unless said)")
    print(f"{'':48} {'ours (30 cards, more on scroll)':>32} {'naive (every card at once)':>28}")
    rows = [("data.js loaded and parsed (since navigation)", "data"),
            ("first cards in the DOM", "dom"), ("first cards on screen", "painted"),
            ("DOM elements after load", "nodes"), ("JS heap after load (MB)", "heap_mb")]
    rows += [(label, label) for label, _ in FILTERS]
    for label, key in rows:
        print(f"{label:48} {lazy[key]:>32,.0f} {naive[key]:>28,.0f}")


if __name__ == "__main__":
    main()
