"""Stage `generate`: ask Gemini about every `ok` clip of the manifest, through the response cache.

    python -m stages.generate --manifest data/clips.jsonl --clips-dir data/clips \
        --cache-dir data/gemini_cache --out data/responses.jsonl --metrics metrics/generate.json

Only cache misses are requested; each answer is stored durably as it arrives. Requests in flight:
EVUD_CONCURRENCY (default 8); not a param, since it changes no output.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .cache import ResponseCache
from .gemini import Backend, BackendError, GeminiRequest, build_request, classify_response, make_backend
from .jsonl import read_jsonl, write_json, write_jsonl
from .params import GeminiParams, PromptParams, load_section, runtime_int
from .progress import progress_bar, summarise_failures
from .records import ClipRecord, ClipStatus, GeminiResult, ResponseStatus


def ok_clips(manifest: Path) -> list[ClipRecord]:
    clips = [ClipRecord.model_validate(r) for r in read_jsonl(manifest)]
    return [c for c in clips if c.status is ClipStatus.ok]


def answer_entry(request: GeminiRequest, backend: Backend) -> dict[str, Any]:
    """Call the backend once (it retries inside) and turn the outcome into a cache entry; never raises."""
    started = time.monotonic()
    entry: dict[str, Any] = {"request_key": request.key, "model": request.model, "backend": backend.name}
    try:
        response = backend.generate(request)
    except BackendError as err:
        return {**entry, "status": ResponseStatus.failed.value, "error": str(err),
                "latency_s": round(time.monotonic() - started, 3)}
    classified = classify_response(response)
    return {**entry, "status": classified.status.value, "text": classified.text,
            "finish_reason": classified.finish_reason, "block_reason": classified.block_reason,
            "usage": classified.usage.model_dump(), "latency_s": round(time.monotonic() - started, 3),
            "response": response.model_dump(mode="json", exclude_none=True, by_alias=True)}


def result_record(request: GeminiRequest, entry: dict[str, Any]) -> GeminiResult:
    clip = request.clip
    return GeminiResult(**clip.ids().model_dump(), request_key=request.key, clip_sha256=clip.sha256 or "",
                        model=request.model, backend=entry["backend"], status=entry["status"],
                        finish_reason=entry.get("finish_reason"), block_reason=entry.get("block_reason"),
                        error=entry.get("error"), text=entry.get("text"), usage=entry.get("usage") or {},
                        response=entry.get("response"))


def request_missing(requests: list[GeminiRequest], backend: Backend, cache: ResponseCache, concurrency: int) -> list[dict[str, Any]]:
    """Ask the backend for each request, `concurrency` at a time, caching every answer as it arrives."""
    entries = []
    failures = 0
    bar = progress_bar(len(requests), f"generate: {backend.name}")
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending = {pool.submit(answer_entry, request, backend) for request in requests}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                entry = future.result()
                cache.put(entry)
                entries.append(entry)
                failures += entry["status"] == ResponseStatus.failed.value
                bar.update(1)
                bar.set_postfix(failed=failures)
    bar.close()
    return entries


def generate_metrics(results: list[GeminiResult], fresh: list[dict[str, Any]], hits: int) -> dict[str, Any]:
    latencies = sorted(e["latency_s"] for e in fresh if "latency_s" in e)
    return {
        "clips": len(results),
        "calls": len(fresh),
        "cache_hits": hits,
        "by_status": dict(sorted(Counter(r.status.value for r in results).items())),
        "tokens_in": sum(r.usage.prompt_tokens for r in results),
        "tokens_out": sum(r.usage.output_tokens for r in results),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
    }


def run(gemini: GeminiParams, prompt: PromptParams, manifest: Path, clips_dir: Path, cache_dir: Path, out: Path,
        metrics: Path, concurrency: int, backend: Backend | None = None) -> list[GeminiResult]:
    backend = backend or make_backend(gemini, clips_dir)
    requests = [build_request(clip, gemini, prompt) for clip in ok_clips(manifest)]
    cache = ResponseCache(cache_dir)
    missing = list({r.key: r for r in requests if cache.get(r.key) is None}.values())
    print(f"generate: {len(requests)} clips, {len(requests) - len(missing)} answered before (cache), "
          f"{len(missing)} to request from {backend.name} model {gemini.model}", file=sys.stderr)
    try:
        fresh = request_missing(missing, backend, cache, concurrency) if missing else []
    finally:
        cache.compact()
    fresh_by_key = {e["request_key"]: e for e in fresh}
    results = [result_record(r, cache.get(r.key) or fresh_by_key[r.key]) for r in requests]
    results.sort(key=lambda r: (r.video_uid, r.clip_uid, r.annotation_uid, r.language_query_index))
    write_jsonl(out, results)
    write_json(metrics, generate_metrics(results, fresh, len(requests) - len(missing)))
    not_ok = [(r.key, f"{r.status.value}: {r.error or r.block_reason or r.finish_reason}") for r in results
              if r.status is not ResponseStatus.ok]
    print(summarise_failures("generate", not_ok), file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run(load_section("gemini", args.params), load_section("prompt", args.params), args.manifest,
        args.clips_dir, args.cache_dir, args.out, args.metrics, runtime_int("EVUD_CONCURRENCY", 8))


if __name__ == "__main__":
    main()
