"""Stage `generate`: ask Gemini about every `ok` clip of the manifest, through the response cache.

    python -m stages.generate --manifest data/clips.jsonl --clips-dir data/clips \
        --cache-dir data/gemini_cache --out data/responses.jsonl --metrics metrics/generate.json

Only cache misses are requested; each answer is stored durably as it arrives. Before calling, the stage logs
what it will call and what that should cost, and refuses to start above gemini.max_cost_usd.
`gemini.mode=online` sends one generateContent per clip, EVUD_CONCURRENCY (default 8) at a time, at most
EVUD_MAX_RPM per minute; `gemini.mode=batch` submits one Vertex batch prediction job (stages.batch).
Runtime knobs are environment variables, not params, since they change no output.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .cache import ResponseCache
from .cost import CostEstimate, CostLimitExceeded, MissingPrice, check_budget, estimate_cost, usage_cost
from .gemini import Backend, BackendError, GeminiRequest, build_request, failed_entry, make_backend, response_entry
from .jsonl import read_jsonl, write_json, write_jsonl
from .params import GeminiParams, PromptParams, load_section, runtime_int
from .progress import progress_bar, summarise_failures
from .records import ClipRecord, ClipStatus, GeminiResult, ResponseStatus, Usage


def ok_clips(manifest: Path) -> list[ClipRecord]:
    clips = [ClipRecord.model_validate(r) for r in read_jsonl(manifest)]
    return [c for c in clips if c.status is ClipStatus.ok]


def answer_entry(request: GeminiRequest, backend: Backend) -> dict[str, Any]:
    """Call the backend once (it retries inside) and turn the outcome into a cache entry; never raises."""
    started = time.monotonic()
    try:
        response = backend.generate(request)
    except BackendError as err:
        return failed_entry(request.key, request.model, backend.name, str(err),
                            latency_s=round(time.monotonic() - started, 3))
    except Exception as err:  # noqa: BLE001  an answer the SDK cannot read must not stop 13,000 paid calls
        return failed_entry(request.key, request.model, backend.name, f"unexpected_error: {type(err).__name__}: {err}",
                            latency_s=round(time.monotonic() - started, 3))
    return response_entry(request.key, request.model, backend.name, response,
                          latency_s=round(time.monotonic() - started, 3))


def result_record(request: GeminiRequest, entry: dict[str, Any]) -> GeminiResult:
    clip = request.clip
    return GeminiResult(**clip.ids().model_dump(), request_key=request.key, clip_sha256=clip.sha256 or "",
                        model=request.model, backend=entry["backend"], status=entry["status"],
                        finish_reason=entry.get("finish_reason"), block_reason=entry.get("block_reason"),
                        error=entry.get("error"), text=entry.get("text"), usage=entry.get("usage") or {},
                        response=entry.get("response"))


def request_missing(requests: list[GeminiRequest], backend: Backend, cache: ResponseCache, concurrency: int) -> list[dict[str, Any]]:
    """Ask the backend for each request, `concurrency` at a time, caching every answer as it arrives.

    Answers that complete together are written with one fsync (group commit); each is on disk before the
    next wait, so a kill -9 loses only requests still in flight.
    """
    entries: list[dict[str, Any]] = []
    failures = 0
    bar = progress_bar(len(requests), f"generate: {backend.name}")
    pool = ThreadPoolExecutor(max_workers=concurrency)
    pending: set[Future] = {pool.submit(answer_entry, request, backend) for request in requests}
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            arrived = [future.result() for future in done]
            cache.put_many(arrived)
            entries += arrived
            failures += sum(e["status"] == ResponseStatus.failed.value for e in arrived)
            bar.update(len(arrived))
            retries = getattr(getattr(backend, "retries", None), "total", 0)
            bar.set_postfix(failed=failures, retries=retries, refresh=False)
    finally:
        # On Ctrl-C or an error, queued requests are dropped; those in flight finish (and are lost).
        pool.shutdown(wait=not pending, cancel_futures=True)
        bar.close()
    return entries


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(int(fraction * len(sorted_values)), len(sorted_values) - 1)], 3)


def not_ok_reason(result: GeminiResult) -> str:
    """`status:reason` for a result that is not ok, e.g. failed:api_error_429, blocked:SAFETY, truncated:MAX_TOKENS."""
    if result.status is ResponseStatus.failed:
        return f"failed:{(result.error or 'unknown').split(':', 1)[0]}"
    return f"{result.status.value}:{result.block_reason or result.finish_reason or 'unknown'}"


def generate_metrics(results: list[GeminiResult], fresh: list[dict[str, Any]], hits: int, gemini: GeminiParams,
                     estimate: CostEstimate, retries: int, elapsed_s: float) -> dict[str, Any]:
    latencies = sorted(e["latency_s"] for e in fresh if "latency_s" in e)
    fresh_usage = [Usage.model_validate(e.get("usage") or {}) for e in fresh]
    return {
        "mode": gemini.mode,
        "clips": len(results),
        "calls": len(fresh),
        "cache_hits": hits,
        "retries": retries,
        "by_status": dict(sorted(Counter(r.status.value for r in results).items())),
        "not_ok_by_reason": dict(sorted(Counter(not_ok_reason(r) for r in results
                                                if r.status is not ResponseStatus.ok).items())),
        "tokens_in": sum(r.usage.prompt_tokens for r in results),
        "tokens_out": sum(r.usage.output_tokens for r in results),
        "calls_tokens_in": sum(u.prompt_tokens for u in fresh_usage),
        "calls_tokens_out": sum(u.output_tokens for u in fresh_usage),
        "estimated_cost_usd": None if estimate.cost_usd is None else round(estimate.cost_usd, 4),
        "cost_usd": usage_cost(fresh_usage, gemini, gemini.mode == "batch") if gemini.backend == "vertex" else 0.0,
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
        "requests_per_minute": round(len(fresh) / elapsed_s * 60, 1) if fresh and elapsed_s > 0 else None,
    }


def end_summary(metrics: dict[str, Any], elapsed_s: float) -> str:
    cost = metrics["cost_usd"]
    return (f"generate: {metrics['calls']} call(s) in {elapsed_s:.1f} s"
            f" ({metrics['requests_per_minute'] or 0:.0f}/min), {metrics['cache_hits']} from cache,"
            f" {metrics['retries']} retries, {metrics['by_status'].get('failed', 0)} failed;"
            f" tokens in/out {metrics['calls_tokens_in']:,}/{metrics['calls_tokens_out']:,};"
            f" cost {'unknown' if cost is None else f'${cost:,.4f}'}")


def run(gemini: GeminiParams, prompt: PromptParams, manifest: Path, clips_dir: Path, cache_dir: Path, out: Path,
        metrics: Path, concurrency: int, backend: Backend | None = None) -> list[GeminiResult]:
    requests = [build_request(clip, gemini, prompt) for clip in ok_clips(manifest)]
    cache = ResponseCache(cache_dir)
    missing = list({r.key: r for r in requests if cache.get(r.key) is None}.values())
    estimate = estimate_cost(missing, gemini)
    print(f"generate: {len(requests)} clips, {len(requests) - len(missing)} answered before (cache); "
          f"{gemini.backend} {gemini.mode} model {gemini.model}: {estimate.describe()}"
          + (" (replay: free)" if gemini.backend == "replay" else ""), file=sys.stderr)
    if gemini.backend == "vertex":
        check_budget(estimate, gemini)
    if gemini.mode == "batch" and gemini.backend != "vertex":
        from .batch import BatchSetupError

        raise BatchSetupError("gemini.mode=batch needs gemini.backend=vertex")
    backend = backend or make_backend(gemini, clips_dir)
    started = time.monotonic()
    retries = 0
    try:
        if not missing:
            fresh = []
        elif gemini.mode == "batch":
            from .batch import run_batch  # imported lazily: only batch mode needs Cloud Storage

            outcome = run_batch(missing, gemini, backend, cache, clips_dir, concurrency)  # type: ignore[arg-type]
            fresh, retries = outcome.entries, outcome.resubmitted
        else:
            fresh = request_missing(missing, backend, cache, concurrency)
            retries = getattr(getattr(backend, "retries", None), "total", 0)
    finally:
        cache.compact()
    elapsed = time.monotonic() - started
    results = [result_record(r, cache.entry(r.key) or failed_entry(r.key, r.model, backend.name, "not_requested"))
               for r in requests]
    results.sort(key=lambda r: (r.video_uid, r.clip_uid, r.annotation_uid, r.language_query_index))
    write_jsonl(out, results)
    summary = generate_metrics(results, fresh, len(requests) - len(missing), gemini, estimate, retries, elapsed)
    write_json(metrics, summary)
    print(end_summary(summary, elapsed), file=sys.stderr)
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
    try:
        run(load_section("gemini", args.params), load_section("prompt", args.params), args.manifest,
            args.clips_dir, args.cache_dir, args.out, args.metrics, runtime_int("EVUD_CONCURRENCY", 8))
    except (CostLimitExceeded, MissingPrice, ValueError) as err:
        # User-actionable: say what to do, without a traceback.
        sys.exit(f"generate: {err}" if not str(err).startswith("generate:") else str(err))


if __name__ == "__main__":
    main()
