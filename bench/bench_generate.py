"""Benchmark of generate against the local Vertex fake (tests/fake_vertex.py), one command, figures side by side.

    python -m bench.bench_generate                       # 200 clips at 3 s latency; about 6 minutes
    python -m bench.bench_generate --clips 60 --sequential-clips 10 --latency 1   # a quick look

Scenarios, all through the real google-genai SDK over HTTP on 127.0.0.1:
  1. sequential, the published way: one generateContent after another, no retry, the whole output
     rewritten every 5th answer (run on --sequential-clips, since 200 clips would take 10 minutes: the rate
     is what it measures);
  2. ours with EVUD_MAX_RPM=60 (EVUD_CONCURRENCY 8);
  3. ours uncapped at EVUD_CONCURRENCY=32;
  4. ours at EVUD_CONCURRENCY=32 with 30 % of requests answered 429/500/503 (default retries and backoff);
  5. persisting 10,000 answers in the answer store (one file each, written whole and fsync'd);
  6. memory with inline clips: the generate stage in its own process (the fake in another, keeping no request
     body) asking about 1,000 and 5,000 inline clips of --memory-clip-mb MB at EVUD_CONCURRENCY=64, peak RSS
     sampled every 0.1 s; against the naive way (every request built before the first is sent), at 1,000.
Latency-bound and light on CPU but for scenario 6; do not run it alongside the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

from evud.core.jsonl import write_jsonl
from evud.core.params import load_section
from evud.core.records import AnswerEntry, ClipRecord
from evud.gemini import generate
from evud.gemini.answer_store import AnswerStore
from evud.gemini.prices import load_prices
from evud.gemini.backends.vertex import google_credentials, make_client
from evud.gemini.backends.vertex_requests import request_config, request_contents, video_part
from evud.gemini.request import build_request
from tests.support.fake_vertex import FakeVertex, answer_json

ROOT = Path(__file__).resolve().parents[1]

PARAMS = ROOT / "params.yaml"


def synthetic_clips(n: int, salt: str) -> list[ClipRecord]:
    """Clips with gs:// copies (sent as fileData, so no bytes move): what a real run after upload sends."""
    clips = []
    for i in range(n):
        sha = hashlib.sha256(f"{salt}-{i}".encode()).hexdigest()
        clips.append(ClipRecord(video_uid="bench", clip_uid=salt, annotation_uid=f"a{i:05d}", language_query_index=0,
                                status="ok", window_start=0.0, window_end=8.0, file_start=0.0, file_end=8.0,
                                duration=8.0, sha256=sha, clip_uri=f"gs://bench/clips/{sha}.mp4", clip_path="x.mp4"))
    return clips


def params_for(fake: FakeVertex):
    gemini = load_section("gemini", PARAMS).model_copy(
        update={"backend": "vertex", "project": "bench", "base_url": fake.base_url})
    return gemini, load_section("prompt", PARAMS)


def published_loop(fake: FakeVertex, n: int, work: Path) -> dict:
    """One request at a time, no retry, every 5th answer rewrites the whole output (the published script)."""
    gemini, prompt = params_for(fake)
    client = make_client(gemini, google_credentials())
    requests = [build_request(c, gemini, prompt) for c in synthetic_clips(n, "sequential")]
    answers, out = [], work / "published.json"
    started = time.monotonic()
    for i, request in enumerate(requests, 1):
        response = client.models.generate_content(model=request.model, config=request_config(request),
                                                  contents=request_contents(request, video_part(request, work)))
        answers.append(response.model_dump(mode="json", exclude_none=True))
        if i % 5 == 0:
            out.write_text(json.dumps(answers))
    elapsed = time.monotonic() - started
    return {"clips": n, "wall_s": elapsed, "rpm": n / elapsed * 60, "retries": "-", "failed": "-"}


def ours(fake: FakeVertex, n: int, work: Path, name: str, env: dict[str, str]) -> dict:
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        gemini, prompt = params_for(fake)
        manifest = work / f"{name}.jsonl"
        write_jsonl(manifest, synthetic_clips(n, name))
        started = time.monotonic()
        outcome = generate.run(gemini, prompt, manifest, work, work / f"{name}-out.jsonl", work / f"{name}-metrics.json",
                               int(env["EVUD_CONCURRENCY"]), prices=load_prices(Path("conf/prices.yaml")),
                               store=AnswerStore(str(work / f"{name}-answers")))
        elapsed = time.monotonic() - started
    finally:
        for k, v in previous.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    facts = outcome.facts
    return {"clips": n, "wall_s": elapsed, "rpm": facts["requests_per_minute"], "retries": facts["retries"],
            "failed": sum(r.status.value == "failed" for r in outcome.results)}


def inline_manifest(work: Path, n: int, clip_mb: float) -> Path:
    """n manifest records of distinct requests, all pointing at one clip file of clip_mb MB (sent inline)."""
    (work / "inline.mp4").write_bytes(os.urandom(int(clip_mb * 1e6)))
    clips = [ClipRecord(video_uid="mem", clip_uid="inline", annotation_uid=f"a{i:05d}", language_query_index=0,
                        status="ok", window_start=0.0, window_end=8.0, file_start=0.0, file_end=8.0, duration=8.0,
                        sha256=hashlib.sha256(f"inline-{i}".encode()).hexdigest(), clip_path="inline.mp4")
                 for i in range(n)]
    write_jsonl(work / f"inline-{n}.jsonl", clips)
    return work / f"inline-{n}.jsonl"


def fake_in_its_own_process(latency: float) -> tuple[subprocess.Popen, str]:
    code = ("import sys, time; from tests.support.fake_vertex import FakeVertex; "
            f"f = FakeVertex(latency_s={latency}, keep_bodies=False); print(f.start(), flush=True); time.sleep(1e6)")
    server = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().strip()


def peak_rss_mb(process: subprocess.Popen) -> float:
    """Peak resident memory of a running process (and its children), sampled every 0.1 s until it exits."""
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.1)
    return peak / 1e6


def generate_memory(work: Path, n: int, clip_mb: float, latency: float) -> dict:
    """The generate stage, as DVC runs it, on n inline clips: its peak memory and how long it took."""
    server, url = fake_in_its_own_process(latency)
    params = yaml.safe_load(PARAMS.read_text())
    params["gemini"].update(backend="vertex", project="bench", base_url=url)
    (work / "memory-params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "EVUD_CONCURRENCY": "64", "EVUD_STORE": str(work / f"memory-store-{n}"), "EVUD_PROGRESS": "0"}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "stages.generate", "--manifest", str(inline_manifest(work, n, clip_mb)),
                                "--clips-dir", str(work), "--prices", str(ROOT / "conf/prices.yaml"),
                                "--out", str(work / f"memory-{n}.jsonl"), "--metrics", str(work / f"memory-{n}-m.json"),
                                "--params", str(work / "memory-params.yaml")], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = peak_rss_mb(process)
    server.kill()
    answered = json.loads((work / f"memory-{n}-m.json").read_text())["by_status"].get("ok", 0)
    return {"clips": n, "answered": answered, "peak_mb": peak, "wall_s": time.monotonic() - started}


NAIVE_MEMORY = """
import sys, json, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from evud.core.jsonl import read_jsonl
from evud.core.params import load_section
from evud.core.records import ClipRecord
from evud.gemini.backends.vertex import google_credentials, make_client
from evud.gemini.backends.vertex_requests import request_config, request_contents, video_part
from evud.gemini.request import build_request
params, manifest, clips_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
gemini, prompt = load_section("gemini", params), load_section("prompt", params)
client = make_client(gemini, google_credentials())
requests = [build_request(ClipRecord.model_validate(r), gemini, prompt) for r in read_jsonl(manifest)]
built = [(r, request_contents(r, video_part(r, clips_dir)), request_config(r)) for r in requests]  # all first
with ThreadPoolExecutor(64) as pool:
    list(pool.map(lambda b: client.models.generate_content(model=b[0].model, contents=b[1], config=b[2]), built))
"""


def naive_memory(work: Path, n: int, clip_mb: float, latency: float) -> dict:
    """The straightforward way: every request (with its inline clip) built before the first is sent."""
    server, url = fake_in_its_own_process(latency)
    params = yaml.safe_load(PARAMS.read_text())
    params["gemini"].update(backend="vertex", project="bench", base_url=url)
    (work / "naive-params.yaml").write_text(yaml.safe_dump(params))
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", NAIVE_MEMORY, str(work / "naive-params.yaml"),
                                str(inline_manifest(work, n, clip_mb)), str(work)], cwd=ROOT, env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = peak_rss_mb(process)
    server.kill()
    return {"clips": n, "answered": n if process.returncode == 0 else 0, "peak_mb": peak,
            "wall_s": time.monotonic() - started}


def persist_10k(work: Path, n: int = 10_000) -> dict:
    """Store n realistic answers (a full generateContent response each) one at a time, each written whole and
    fsync'd, then list and read them all back as the next run does."""
    response = answer_json("ok", "0" * 64, "gemini-3.5-flash")
    entries = [AnswerEntry(request_key=hashlib.sha256(str(i).encode()).hexdigest(), model="gemini-3.5-flash",
                           backend="vertex", status="ok", text=response["candidates"][0]["content"]["parts"][0]["text"],
                           usage={"prompt_tokens": 2000, "output_tokens": 150, "total_tokens": 2150},
                           response=response) for i in range(n)]
    store = AnswerStore(str(work / "persist-answers"))
    started = time.monotonic()
    for entry in entries:
        store.put(entry)
    stored = time.monotonic() - started
    started = time.monotonic()
    found = store.get_many(e.request_key for e in entries)
    read_back = time.monotonic() - started
    assert len(found) == n
    size_mb = sum(p.stat().st_size for p in (work / "persist-answers").rglob("*.json")) / 1e6
    return {"n": n, "store_s": stored, "per_answer_ms": stored / n * 1000, "read_s": read_back, "size_mb": size_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--sequential-clips", type=int, default=20)
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument("--memory-clips", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--memory-clip-mb", type=float, default=3.0)
    parser.add_argument("--memory-latency", type=float, default=0.5)
    args = parser.parse_args()
    os.environ.setdefault("GOOGLE_OAUTH_ACCESS_TOKEN", "bench-token")
    os.environ["EVUD_PROGRESS"] = "0"
    fake = FakeVertex(latency_s=args.latency, seed=7)
    fake.start()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"fake Vertex at {fake.base_url}, latency {args.latency} s", file=sys.stderr)
        rows.append(("sequential, published way", published_loop(fake, args.sequential_clips, work), "published: 19.7/min"))
        rows.append(("ours, EVUD_MAX_RPM=60, concurrency 8",
                     ours(fake, args.clips, work, "capped", {"EVUD_CONCURRENCY": "8", "EVUD_MAX_RPM": "60"}), ">= 57/min"))
        rows.append(("ours, uncapped, concurrency 32",
                     ours(fake, args.clips, work, "uncapped", {"EVUD_CONCURRENCY": "32", "EVUD_MAX_RPM": ""}), ">= 500/min"))
        fake.error_rate = 0.3
        rows.append(("ours, 30% 429/5xx, concurrency 32",
                     ours(fake, args.clips, work, "faults", {"EVUD_CONCURRENCY": "32", "EVUD_MAX_RPM": ""}), "0 lost"))
        fake.error_rate = 0.0
        persisted = persist_10k(work)
        fake.stop()
        memory = [("ours", generate_memory(work, n, args.memory_clip_mb, args.memory_latency)) for n in args.memory_clips]
        memory.append(("naive: every request built first", naive_memory(work, min(args.memory_clips),
                                                                          args.memory_clip_mb, args.memory_latency)))

    print(f"\ngenerate against the local Vertex fake, {args.latency:g} s latency per request\n")
    print(f"{'scenario':40} {'clips':>6} {'wall s':>8} {'req/min':>8} {'retries':>8} {'lost':>5}  target")
    for name, row, target in rows:
        print(f"{name:40} {row['clips']:>6} {row['wall_s']:>8.1f} {row['rpm']:>8.1f} {row['retries']!s:>8} "
              f"{row['failed']!s:>5}  {target}")
    print(f"\npersisting {persisted['n']:,} answers ({persisted['size_mb']:.0f} MB): "
          f"{persisted['store_s']:.2f} s of whole, fsync'd writes ({persisted['per_answer_ms']:.3f} ms per answer, "
          f"on the request threads), {persisted['read_s']:.2f} s to list and read them all back (the next run); "
          "published: 422 s of rewriting its whole output")
    print(f"\nmemory with inline clips of {args.memory_clip_mb:g} MB, EVUD_CONCURRENCY=64, {args.memory_latency:g} s "
          "latency, each in its own process\n")
    print(f"{'way':36} {'clips':>6} {'answered':>9} {'peak RSS MB':>12} {'wall s':>8}")
    for name, row in memory:
        print(f"{name:36} {row['clips']:>6} {row['answered']:>9} {row['peak_mb']:>12,.0f} {row['wall_s']:>8.1f}")


if __name__ == "__main__":
    main()
