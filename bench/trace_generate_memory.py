"""Where generate's memory per request in flight goes: tracemalloc over the generate stage asking about inline clips.

    python -m bench.trace_generate_memory [--clips 200] [--clip-mb 3] [--concurrency 64] [--latency 0.5]

Runs evud.gemini.generate.run in this process (the Vertex fake in a child process, keeping no request body, as
bench_generate's memory scenario), samples tracemalloc's traced memory every 50 ms, keeps the snapshot taken at the
peak, and prints the allocation sites holding the most at that moment (grouped by the innermost frame of this
project, google-genai, httpx or pydantic that made them), with MB per request in flight.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import tracemalloc
from collections import defaultdict
from pathlib import Path

from bench.bench_generate import PARAMS, fake_in_its_own_process, inline_manifest
from evud.core.params import load_section
from evud.gemini import generate
from evud.gemini.answer_store import AnswerStore
from evud.gemini.prices import load_prices

ROOT = Path(__file__).resolve().parents[1]
INTERESTING = ("/evud/", "/google/genai/", "/httpx/", "/httpcore/", "/pydantic/", "/json/", "/base64", "/ssl", "/h11/")


class PeakSnapshot:
    """A thread that takes a snapshot whenever traced memory reaches a new high (at most every `every_s`)."""

    def __init__(self, every_s: float = 0.05):
        self.every_s, self.peak, self.snapshot = every_s, 0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            current, _ = tracemalloc.get_traced_memory()
            if current > self.peak * 1.10:
                self.peak, self.snapshot = current, tracemalloc.take_snapshot()

    def __enter__(self) -> "PeakSnapshot":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def site(trace: tracemalloc.Trace) -> str:
    """The innermost frame of an interesting library (where the bytes were made), as file:line."""
    for frame in reversed(trace.traceback):  # tracemalloc lists the oldest frame first
        if any(part in frame.filename for part in INTERESTING):
            name = frame.filename.split("site-packages/")[-1].split("/wt/h-evud-hour/")[-1]
            return f"{name}:{frame.lineno}"
    frame = trace.traceback[0]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--clip-mb", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    os.environ.setdefault("GOOGLE_OAUTH_ACCESS_TOKEN", "bench-token")
    os.environ.update(EVUD_PROGRESS="0", EVUD_CONCURRENCY=str(args.concurrency))
    server, url = fake_in_its_own_process(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            os.environ["EVUD_STORE"] = str(work / "store")
            manifest = inline_manifest(work, args.clips, args.clip_mb)
            gemini = load_section("gemini", PARAMS).model_copy(update={"backend": "vertex", "project": "bench",
                                                                        "base_url": url})
            tracemalloc.start(40)
            with PeakSnapshot() as watcher:
                generate.run(gemini, load_section("prompt", PARAMS), manifest, work, work / "out.jsonl",
                             work / "metrics.json", args.concurrency, prices=load_prices(ROOT / "conf/prices.yaml"),
                             store=AnswerStore(str(work / "answers")))
            tracemalloc.stop()
    finally:
        server.kill()
    snapshot = watcher.snapshot
    by_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for trace in snapshot.traces:
        by_site[site(trace)][0] += trace.size
        by_site[site(trace)][1] += 1
    total = sum(size for size, _ in by_site.values())
    print(f"peak traced {watcher.peak / 1e6:.0f} MB with {args.concurrency} requests in flight, inline clips of "
          f"{args.clip_mb:g} MB: {watcher.peak / 1e6 / args.concurrency:.1f} MB per request in flight\n")
    print(f"{'MB':>8} {'MB/request':>10} {'blocks':>8}  where")
    for where, (size, count) in sorted(by_site.items(), key=lambda kv: -kv[1][0])[:15]:
        print(f"{size / 1e6:>8.1f} {size / 1e6 / args.concurrency:>10.2f} {count:>8}  {where}")
    print(f"{total / 1e6:>8.1f} in all")


if __name__ == "__main__":
    main()
