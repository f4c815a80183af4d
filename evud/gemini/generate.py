"""The generate stage's work: ask Gemini about every `ok` clip of the manifest, paying once per answer.

Answers already paid for are reused (evud.gemini.asking, shared with verify): those in the answer store (evud.gemini.answer_store; outside every DVC
out, shared by experiments, optionally by a team) and those in the responses dvc.lock last recorded (a
fresh clone after `dvc pull`). Only the rest is requested; each answer is stored the moment it arrives.
Before calling, the stage logs what it will call and what that should cost, and refuses to start above
gemini.max_cost_usd; the backend checks its setup once before the first call. `gemini.mode=online` sends
one request per clip, EVUD_CONCURRENCY (default 8) at a time, at most EVUD_MAX_RPM per minute;
`gemini.mode=batch` hands the requests to the backend's batch jobs. Requests that fail for a reason a retry
can fix make the stage exit 1 after writing its outputs, so the next `dvc repro` asks them again;
EVUD_ALLOW_FAILED=1 builds the dataset from what succeeded instead.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from evud.core.jsonl import read_jsonl, write_json, write_jsonl
from evud.core.params import GeminiParams, PromptParams
from evud.core.records import AnswerEntry, ClipRecord, ClipStatus, GeminiResult, ResponseStatus
from evud.core.store import answer_store_url
from evud.gemini.answer_store import AnswerStore, import_rescued
from evud.gemini.asking import (
    Answered,
    KnownAnswers,
    ModelAsker,
    Round,
    cached_responses,
    describe_reuse,
    finish_paid_run,
    known_answers,
    reused_from,
)
from evud.gemini.backend import Backend, failed_entry
from evud.gemini.backends import stage_backend
from evud.gemini.cost import CostEstimate, CostLimitExceeded, check_budget, estimate_cost, usage_cost, usd
from evud.gemini.prices import ModelPrice, PriceTable, today_utc
from evud.gemini.request import GeminiRequest, build_request


def ok_clips(manifest: Path) -> list[ClipRecord]:
    clips = [ClipRecord.model_validate(r) for r in read_jsonl(manifest)]
    return [c for c in clips if c.status is ClipStatus.ok]


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(int(fraction * len(sorted_values)), len(sorted_values) - 1)], 3)


def not_ok_reason(result: GeminiResult) -> str:
    """`status:reason` for a result that is not ok, e.g. failed:api_error_429, blocked:SAFETY, truncated:MAX_TOKENS."""
    if result.status in (ResponseStatus.failed, ResponseStatus.rejected):
        return f"{result.status.value}:{(result.error or 'unknown').split(':', 1)[0]}"
    return f"{result.status.value}:{result.block_reason or result.finish_reason or 'unknown'}"


def served_at(gemini: GeminiParams) -> str:
    """Where the model answers: a server of the openai backend, else Vertex's location."""
    return f"at {gemini.base_url}" if gemini.backend == "openai" else f"in {gemini.location}"


def result_record(request: GeminiRequest, entry: AnswerEntry) -> GeminiResult:
    fields = entry.model_dump(exclude={"batch_job"})
    return GeminiResult(**request.clip.ids().model_dump(), clip_sha256=request.clip.sha256 or "", **fields)


def generate_metrics(results: list[GeminiResult], gemini: GeminiParams, billed: bool, prices: PriceTable,
                     today: date) -> dict[str, Any]:
    """Facts of the answers in responses.jsonl (tracked): the same answers give the same figures, every run."""
    answered = [r for r in results if r.status is not ResponseStatus.failed]
    usages = [r.usage for r in answered]
    return {
        "model": gemini.model,
        "mode": gemini.mode,
        "clips": len(results),
        "by_status": dict(sorted(Counter(r.status.value for r in results).items())),
        "not_ok_by_reason": dict(sorted(Counter(not_ok_reason(r) for r in results
                                                if r.status is not ResponseStatus.ok).items())),
        "tokens_in": sum(u.prompt_tokens for u in usages),
        "tokens_out": sum(u.output_tokens for u in usages),
        "tokens_thinking": sum(u.thoughts_tokens for u in usages),
        # Answers cut at MAX_TOKENS and asked once more with a larger budget, and those still cut after that.
        "truncated_reasked": sum(r.reasked_from is not None for r in results),
        "truncated_after_reask": sum(r.reasked_from is not None and r.status is ResponseStatus.truncated
                                     for r in results),
        # What these answers cost at list price on the day each arrived (thinking billed as output); replay
        # answers cost nothing.
        "answers_cost_usd": usage_cost([(r.usage, r.answered_at) for r in answered], gemini.model, prices,
                                       gemini.mode == "batch", today) if billed else 0.0,
    }


def run_facts(fresh: list[Answered], calls: int, reused: dict[str, int], requests: int, gemini: GeminiParams,
              estimate: CostEstimate, retries: int, elapsed_s: float, billed: bool, prices: PriceTable,
              today: date) -> dict[str, Any]:
    """Facts of this run only (untracked report and log): calls, reuse (and where from), retries, latency, rate,
    spend."""
    latencies = sorted(a.latency_s for a in fresh if a.latency_s)
    paid = [a.entry for a in fresh if not a.elsewhere]
    usages = [entry.usage for entry in paid]
    return {
        "requests": requests,
        "reused_answers": sum(reused.values()),
        "reused_from": reused,
        "calls": calls,
        "retries": retries,
        "failed": sum(not a.entry.is_final for a in fresh),
        "calls_tokens_in": sum(u.prompt_tokens for u in usages),
        "calls_tokens_out": sum(u.output_tokens for u in usages),
        "estimated_cost_usd": None if estimate.cost_usd is None else round(estimate.cost_usd, 4),
        "cost_usd": usage_cost([(e.usage, e.answered_at) for e in paid], gemini.model, prices,
                               gemini.mode == "batch", today) if billed else 0.0,
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
        "requests_per_minute": round(calls / elapsed_s * 60, 1) if calls and elapsed_s > 0 else None,
        "elapsed_s": round(elapsed_s, 3),
    }


def end_summary(facts: dict[str, Any], billed: bool) -> str:
    if not billed:  # examples read from a file: a rate or a price would only mislead
        return f"generate: {facts['calls']} answer(s) from the replay file, {facts['failed']} failed"
    cost = facts["cost_usd"]
    return (f"generate: {facts['calls']} call(s) in {facts['elapsed_s']:.1f} s"
            f" ({facts['requests_per_minute'] or 0:.0f}/min), {describe_reuse(facts['reused_from'])},"
            f" {facts['retries']} retries, {facts['failed']} failed;"
            f" tokens in/out {facts['calls_tokens_in']:,}/{facts['calls_tokens_out']:,};"
            f" cost {'unknown' if cost is None else f'${cost:,.4f}'}")


@dataclass(frozen=True)
class GenerateRun:
    results: list[GeminiResult]  # what responses.jsonl holds
    facts: dict[str, Any]  # facts of this run (the run report)


# "Maximum output token length 65,536" (Vertex model guides of 3.5 and 3.8 Flash and 3.1 Flash-Lite).
MAX_OUTPUT_TOKENS = 65_536
REASK_BUDGET_FACTOR = 4


def reasked(request: GeminiRequest) -> GeminiRequest | None:
    """The request again with a larger output budget (its own key), or None when the budget cannot grow."""
    budget = request.generation.get("max_output_tokens")
    larger = min(budget * REASK_BUDGET_FACTOR, MAX_OUTPUT_TOKENS) if budget else MAX_OUTPUT_TOKENS
    if budget is not None and larger <= budget:
        return None
    return dataclasses.replace(request, generation={**request.generation, "max_output_tokens": larger})


def reasks(requests: list[GeminiRequest], answers: dict[str, AnswerEntry],
           gemini: GeminiParams) -> dict[str, GeminiRequest]:
    """first request key -> its re-ask, for every answer cut at MAX_TOKENS (when gemini.retry_truncated)."""
    if not gemini.retry_truncated:
        return {}
    return {r.key: retry for r in requests
            if (entry := answers.get(r.key)) is not None and entry.status is ResponseStatus.truncated
            and (retry := reasked(r)) is not None}


def reask_estimate(again: dict[str, GeminiRequest], cut: dict[str, AnswerEntry], gemini: GeminiParams,
                   price: ModelPrice | None) -> CostEstimate:
    """What re-asking these should cost: each at least the output its cut answer spent (it ran out of budget)."""
    total = CostEstimate(0, 0.0, 0, 0, 0.0)
    for key, retry in again.items():
        used = cut[key].usage.output_tokens + cut[key].usage.thoughts_tokens
        total = total + estimate_cost([retry], gemini, price, max(used, price.expected_output_tokens) if price else None)
    return total


def reasks_over_budget(again: dict[str, GeminiRequest], first: Round, gemini: GeminiParams, prices: PriceTable,
                       today: date) -> CostLimitExceeded | None:
    """Refusal of the re-asks of answers cut in this run when, with what the run spent, they exceed the budget
    (the estimate before the run could not know these answers would be cut)."""
    if gemini.max_cost_usd is None or not again:
        return None
    spent = usage_cost([(a.entry.usage, a.entry.answered_at) for a in first.fresh if a.received], gemini.model,
                       prices, gemini.mode == "batch", today) or 0.0
    estimate = reask_estimate(again, first.answers, gemini, prices.price_on(gemini.model, today))
    if estimate.cost_usd is None or spent + estimate.cost_usd <= gemini.max_cost_usd:
        return None
    return CostLimitExceeded(
        f"generate: refusing the re-asks: {len(again)} answer(s) cut at MAX_TOKENS would be asked again with a larger "
        f"output budget ({estimate.describe('re-ask(s)')}); with {usd(spent)} spent in this run that is above "
        f"gemini.max_cost_usd={usd(gemini.max_cost_usd)}. Every answer received is kept. Raise the limit "
        "(-S gemini.max_cost_usd=...) or keep the cut answers (-S gemini.retry_truncated=false), then run again")


def better_answer(first: AnswerEntry, again: AnswerEntry | None) -> tuple[AnswerEntry, bool]:
    """The answer the dataset uses, and whether it is the re-asked one: complete beats cut, longer beats shorter."""
    if again is None or not again.is_final:
        return first, False
    if again.status is ResponseStatus.ok or len(again.text or "") > len(first.text or ""):
        return again, True
    return first, False


def final_results(requests: list[GeminiRequest], first: dict[str, AnswerEntry], again: dict[str, GeminiRequest],
                  second: dict[str, AnswerEntry], failed: AnswerEntry) -> list[GeminiResult]:
    """One result per clip: its answer, or the re-asked one when that is better; sorted by the clip's ids."""
    results = []
    for request in requests:
        entry = first.get(request.key) or failed.model_copy(update={"request_key": request.key})
        retry = again.get(request.key)
        chosen, reasked_used = better_answer(entry, second.get(retry.key) if retry else None)
        result = result_record(request, chosen)
        if reasked_used:
            result = result.model_copy(update={"reasked_from": request.key})
        results.append(result)
    return sorted(results, key=lambda r: r.order)


def run(gemini: GeminiParams, prompt: PromptParams, manifest: Path, clips_dir: Path, out: Path, metrics: Path,
        concurrency: int, *, prices: PriceTable, backend: Backend | None = None,
        store: AnswerStore | None = None) -> GenerateRun:
    requests = [build_request(clip, gemini, prompt) for clip in ok_clips(manifest)]  # checks gemini.generation
    today = today_utc()
    backend = stage_backend(gemini, clips_dir, backend)
    if store is None and backend.billed:
        store = AnswerStore(answer_store_url())
    cached = cached_responses(out)
    asker = ModelAsker(gemini, backend, store, clips_dir, cached, concurrency)
    if store is not None and (rescued := import_rescued(store)):
        print(f"generate: {rescued} answer(s) an earlier run could not keep are in the answer store now", file=sys.stderr)
    known = known_answers(requests, store, cached)
    # Answers cut at MAX_TOKENS already stored are asked again (their own keys): calls the estimate counts.
    stored_again = reasks(requests, known, gemini)
    known_again = known_answers(list(stored_again.values()), store, cached) if stored_again else KnownAnswers()
    pending_again = {key: retry for key, retry in stored_again.items() if retry.key not in known_again}
    price = prices.price_on(gemini.model, today)
    estimate = (estimate_cost(list({r.key: r for r in requests if r.key not in known}.values()), gemini, price)
                + reask_estimate(pending_again, known, gemini, price))
    if backend.billed:
        reasking = f" ({len(pending_again)} of them re-ask answers cut at MAX_TOKENS)" if pending_again else ""
        print(f"generate: {len(requests)} clips, {sum(r.key in known for r in requests)} answered before"
              f" ({store.url}); {gemini.backend} {gemini.mode} model {gemini.model} {served_at(gemini)}:"
              f" {estimate.describe()}{reasking}", file=sys.stderr)
    else:
        print(f"generate: {len(requests)} clips; answers from the replay file {gemini.replay_file} (examples "
              "written by hand: free, offline, never stored)", file=sys.stderr)
    if backend.billed:
        check_budget(estimate, gemini, prices.source, today)
    started = time.monotonic()
    first = asker.ask(requests, known)  # the store is listed and read once, not once per estimate and round
    # Answers cut at MAX_TOKENS: asked once more with a larger budget (their own keys), not the whole run.
    again = reasks(requests, first.answers, gemini)
    if first.stopped:
        again = {}  # nothing more is asked once the store cannot keep an answer or the credentials are refused
    # Answers cut in this run: their re-asks were not in the estimate; within the budget with what was spent?
    cut_now = [key for key in again if key not in stored_again]
    unanswered = {key: retry for key, retry in again.items() if retry.key not in known_again}
    over_budget = (reasks_over_budget(unanswered, first, gemini, prices, today) if backend.billed and cut_now
                   else None)
    if over_budget is not None:
        again = {}
    second = (asker.ask(list(again.values()), known_again.only(r.key for r in again.values()))
              if again else Round(KnownAnswers(), []))
    elapsed = time.monotonic() - started
    not_asked = failed_entry("", gemini.model, backend.name, "not_requested: the run ended before asking", retryable=True)
    results = final_results(requests, first.answers, again, second.answers, not_asked)
    facts = run_facts(first.fresh + second.fresh, first.calls + second.calls, reused_from([first, second]),
                      len(requests) + len(again), gemini, estimate,
                      first.retries + second.retries, elapsed, backend.billed, prices, today)

    def write_outputs() -> None:
        write_jsonl(out, results)
        write_json(metrics, generate_metrics(results, gemini, backend.billed, prices, today))

    # `failed:api_error_503: UNAVAILABLE: ...`, `blocked:SAFETY: SAFETY`: counted by reason, as the metrics are.
    not_ok = [(r.key, f"{not_ok_reason(r)}: {r.error or r.block_reason or r.finish_reason}") for r in results
              if r.status is not ResponseStatus.ok]
    retryable = [(r.key, not_ok_reason(r)) for r in results if r.retryable]
    retryable += [(key, f"reask:{(e.error or '').split(':', 1)[0]}") for key, retry in again.items()
                  if (e := second.answers.get(retry.key)) is not None and e.retryable]
    finish_paid_run("generate", [first, second], store, write_outputs, facts, end_summary(facts, backend.billed),
                    not_ok, retryable, sum(r.status is not ResponseStatus.failed for r in results), len(results),
                    "clip", over_budget)
    return GenerateRun(results, facts)
