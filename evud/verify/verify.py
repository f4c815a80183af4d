"""The verify stage's work: check every QA pair generate produced, and write one verdict per pair.

For each clip whose answer parses into pairs (the parser postprocess uses), up to three requests go to Gemini
(evud.verify.checks): the blind check and the grounding check first, then the judge for the blind answers the free
exact match did not decide. They are asked with generate's machinery (evud.gemini.asking): the answer store first
(nothing paid twice under any DVC workflow, claims between concurrent runs), the verdicts DVC's cache holds next,
then the backend, online or in batch jobs, after the cost estimate, verify.max_cost_usd and the backend's
preflight. Retryable failures leave their pairs `unverified` and make the stage exit 1 after writing its outputs,
so the next `dvc repro` asks them again (EVUD_ALLOW_FAILED=1 accepts them).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evud.core.jsonl import read_jsonl, write_json, write_jsonl
from evud.core.params import GeminiParams, PromptParams, VerifyParams
from evud.core.records import (
    AnswerEntry,
    CheckAnswer,
    ClipRecord,
    ClipStatus,
    ClipVerdicts,
    GeminiResult,
    ResponseStatus,
    Verdict,
)
from evud.core.store import answer_store_url
from evud.gemini.answer_store import AnswerStore, import_rescued
from evud.gemini.asking import (
    CachedAnswers,
    CachedReader,
    KnownAnswers,
    ModelAsker,
    Round,
    describe_reuse,
    finish_paid_run,
    known_answers,
    reused_from,
)
from evud.gemini.backend import Backend
from evud.gemini.backends import stage_backend
from evud.gemini.cost import CostEstimate, answers_cost, estimate_cost, refuse_above, usd
from evud.gemini.prices import PriceTable, today_utc
from evud.gemini.request import GeminiRequest
from evud.verify.checks import (
    BLIND,
    GROUND,
    JUDGE,
    Pair,
    UnreadableAnswer,
    answer_pairs,
    blind_request,
    ground_request,
    judge_request,
    purpose_params,
    read_items,
)
from evud.verify.report import verify_metrics, verdict_plot
from evud.verify.verdicts import CheckOutcome, check_outcome, needs_judge, pair_checks

# Output tokens each check is estimated at (answer + LOW thinking), before a run; the cost after it is metered.
# Seven short JSON items are ~150-250 tokens (the sample's hand-written answers: 120-190); LOW thinking adds a
# few hundred.
OUTPUT_TOKENS = {BLIND: 500, JUDGE: 400, GROUND: 600}


@dataclass
class ClipWork:
    """One clip's answer, its pairs, and the check requests about them."""

    result: GeminiResult
    clip: ClipRecord | None
    pairs: list[Pair]
    skipped: str | None
    requests: dict[str, GeminiRequest] = field(default_factory=dict)  # purpose -> request


def verdict_entries(line: bytes) -> list[AnswerEntry]:
    """The check answers a verdicts.jsonl line holds."""
    return [check.entry() for check in ClipVerdicts.model_validate_json(line).checks]


def cached_verdicts(out: Path) -> CachedReader:
    """Check answers in any verdicts.jsonl (verify's out) DVC's cache holds."""
    return CachedAnswers(out, verdict_entries).find


def read_work(manifest: Path, responses: Path, answer_format: str) -> list[ClipWork]:
    """Every answer of responses.jsonl with its clip and pairs, sorted by the clip's ids."""
    clips = {c.key: c for c in (ClipRecord.model_validate(r) for r in read_jsonl(manifest)) if c.status is ClipStatus.ok}
    results = sorted((GeminiResult.model_validate(r) for r in read_jsonl(responses)), key=lambda r: r.order)
    work = []
    for result in results:
        clip = clips.get(result.key)
        if clip is None:
            work.append(ClipWork(result, None, [], "unknown_clip: the answer names no `ok` clip of the manifest"))
            continue
        pairs, skipped = answer_pairs(result, answer_format)
        work.append(ClipWork(result, clip, pairs, skipped))
    return work


class Checkers:
    """A ModelAsker per model the checks use (batch jobs and preflight are per model), sharing one store."""

    def __init__(self, gemini: GeminiParams, verify: VerifyParams, clips_dir: Path, cached: CachedReader,
                 concurrency: int, backend: Backend | None):
        self.params = {purpose: purpose_params(gemini, verify, purpose) for purpose in (BLIND, JUDGE, GROUND)}
        self._used = [BLIND, JUDGE] * verify.blind + [GROUND] * verify.grounded
        self._given_backend = backend
        self._backends: dict[tuple[str, str | None, str], Backend] = {}
        self._by_model: dict[tuple[str, str | None, str], ModelAsker] = {}
        self.store: AnswerStore | None = None  # set by run() once it knows a paid backend has something to ask
        self.clips_dir, self.cached, self.concurrency = clips_dir, cached, concurrency
        self.purposes: dict[str, str] = {}  # request key -> the check it asks (to read its answer)

    def add(self, work: list[ClipWork]) -> None:
        """Remember the check each request of these clips asks."""
        self.purposes.update({request.key: purpose for item in work for purpose, request in item.requests.items()})

    def unreadable(self, entry: AnswerEntry) -> str | None:
        """Why a check's answer is not the JSON its schema asks for (invalid JSON, the wrong schema), or None."""
        purpose = self.purposes.get(entry.request_key)
        if purpose is None:
            return None
        try:
            read_items(purpose, entry.text)
        except UnreadableAnswer as err:
            return f"the answer is not the JSON asked for ({err})"
        return None

    def backend_for(self, params: GeminiParams) -> Backend:
        where = (params.backend, params.base_url, params.model)  # a model of one server (checks may use several)
        if where not in self._backends:
            self._backends[where] = stage_backend(params, self.clips_dir, self._given_backend)
        return self._backends[where]

    def asker(self, purpose: str) -> ModelAsker:
        """The model's ModelAsker, made on first use: after `store` is set (it keeps what is paid for)."""
        params = self.params[purpose]
        where = (params.backend, params.base_url, params.model)
        if where not in self._by_model:
            self._by_model[where] = ModelAsker(params, self.backend_for(params), self.store, self.clips_dir,
                                               self.cached, self.concurrency, stage="verify",
                                               unreadable=self.unreadable)
        return self._by_model[where]

    def describe_blind_and_judge(self) -> str:
        blind, judge = self.params[BLIND], self.params[JUDGE]
        if (judge.backend, judge.model) == (blind.backend, blind.model):
            return f"blind and judge ({blind.model})"
        return f"blind ({blind.model}) and judge ({judge.model}, {judge.backend})"

    @property
    def billed(self) -> bool:
        """A check is asked of a paid backend: what it answers is kept in the answer store."""
        return any(self.backend_for(self.params[purpose]).billed for purpose in self._used or [BLIND])


def first_requests(work: list[ClipWork], checkers: Checkers, verify: VerifyParams) -> None:
    """The blind and grounding requests of every clip with pairs."""
    for item in work:
        if not item.pairs or item.clip is None:
            continue
        if verify.blind:
            item.requests[BLIND] = blind_request(item.clip, item.pairs, checkers.params[BLIND], verify)
        if verify.grounded:
            item.requests[GROUND] = ground_request(item.clip, item.pairs, checkers.params[GROUND], verify)


def judge_requests(work: list[ClipWork], answers: dict[str, AnswerEntry], checkers: Checkers,
                   verify: VerifyParams) -> None:
    """A judge request for each clip whose blind answer left pairs the exact match did not decide."""
    for item in work:
        blind = item.requests.get(BLIND)
        if blind is None or item.clip is None:
            continue
        outcome = check_outcome(BLIND, answers.get(blind.key))
        undecided = [(p, answer) for p in item.pairs if (answer := needs_judge(p, outcome)) is not None]
        if undecided:
            item.requests[JUDGE] = judge_request(item.clip, undecided, checkers.params[JUDGE], verify)


def judge_upper_bound(item: ClipWork, checkers: Checkers, verify: VerifyParams) -> GeminiRequest | None:
    """For the estimate, before the blind answers are known: a judge request holding every pair of the clip."""
    if BLIND not in item.requests or item.clip is None:
        return None
    return judge_request(item.clip, [(p, p.answer) for p in item.pairs], checkers.params[JUDGE], verify)


def estimate_checks(work: list[ClipWork], known: dict[str, AnswerEntry], checkers: Checkers, verify: VerifyParams,
                    prices: PriceTable) -> CostEstimate:
    """What the checks still to ask should cost: blind and grounding requests not answered yet, and a judge request
    for every clip whose blind answer is not known yet (at most one each, as long as all its pairs)."""
    today = today_utc()
    total = CostEstimate(0, 0.0, 0, 0, 0.0)
    by_purpose: dict[str, list[GeminiRequest]] = {BLIND: [], GROUND: [], JUDGE: []}
    for item in work:
        for purpose, request in item.requests.items():
            if request.key not in known:
                by_purpose[purpose].append(request)
        blind = item.requests.get(BLIND)
        if blind is not None and blind.key not in known and (bound := judge_upper_bound(item, checkers, verify)):
            by_purpose[JUDGE].append(bound)
    for purpose, requests in by_purpose.items():
        if requests:
            params = checkers.params[purpose]
            total = total + estimate_cost(requests, params, prices.price_on(params.model, today),
                                          OUTPUT_TOKENS[purpose])
    return total


def unpriced_model(checkers: Checkers, verify: VerifyParams, prices: PriceTable) -> str:
    purposes = [BLIND] * verify.blind + [GROUND] * verify.grounded
    return next((checkers.params[p].model for p in purposes
                 if prices.price_on(checkers.params[p].model, today_utc()) is None), checkers.params[BLIND].model)


def outcome_of(item: ClipWork, purpose: str, answers: dict[str, AnswerEntry]) -> CheckOutcome:
    request = item.requests.get(purpose)
    return check_outcome(purpose, answers.get(request.key)) if request is not None else CheckOutcome()


def clip_verdicts(item: ClipWork, answers: dict[str, AnswerEntry], verify: VerifyParams) -> ClipVerdicts:
    """One output line: the clip's pairs with their checks and verdicts, and every check request's answer."""
    outcomes = {purpose: outcome_of(item, purpose, answers) for purpose in (BLIND, JUDGE, GROUND)}
    checks = [CheckAnswer(purpose=purpose, **entry.model_dump(exclude={"batch_job"}))
              for purpose, request in sorted(item.requests.items())
              if (entry := answers.get(request.key)) is not None]
    pairs = pair_checks(item.pairs, verify, outcomes[BLIND], outcomes[JUDGE], outcomes[GROUND])
    return ClipVerdicts(**item.result.ids().model_dump(), answer_key=item.result.request_key, skipped=item.skipped,
                        pairs=pairs, checks=checks)


def not_asked_entry(request: GeminiRequest) -> AnswerEntry:
    return AnswerEntry(request_key=request.key, model=request.model, backend=request.backend,
                       status=ResponseStatus.failed, error="not_requested: the run ended before asking",
                       retryable=True)


@dataclass(frozen=True)
class VerifyRun:
    records: list[ClipVerdicts]  # what verdicts.jsonl holds
    facts: dict[str, Any]  # facts of this run (the run report)


def all_answers(rounds: Iterable[Round], requests: Iterable[GeminiRequest]) -> dict[str, AnswerEntry]:
    """Every request's answer (or failure); a request no round reached is a retryable failure."""
    answers: dict[str, AnswerEntry] = {}
    for round_ in rounds:
        answers.update(round_.answers)
    return {r.key: answers.get(r.key) or not_asked_entry(r) for r in requests}


def run_facts(rounds: list[Round], requests: int, elapsed_s: float, estimate: CostEstimate, billed: bool,
              batch: bool, prices: PriceTable) -> dict[str, Any]:
    """Facts of this run only (untracked report and log): calls, reuse, retries, spend."""
    fresh = [a for r in rounds for a in r.fresh]
    paid = [a.entry for a in fresh if not a.elsewhere]
    cost = answers_cost(paid, prices, batch, today_utc()) if billed else 0.0
    calls = sum(r.calls for r in rounds)
    return {
        "requests": requests,
        "reused_answers": sum(len(r.known) for r in rounds) + sum(a.elsewhere for a in fresh),
        "reused_from": reused_from(rounds),
        "calls": calls,
        "retries": sum(r.retries for r in rounds),
        "failed": sum(not a.entry.is_final for a in fresh),
        "estimated_cost_usd": None if estimate.cost_usd is None else round(estimate.cost_usd, 4),
        "cost_usd": cost,
        "requests_per_minute": round(calls / elapsed_s * 60, 1) if calls and elapsed_s > 0 else None,
        "elapsed_s": round(elapsed_s, 3),
    }


def run(verify: VerifyParams, gemini: GeminiParams, prompt: PromptParams, manifest: Path, responses: Path,
        clips_dir: Path, out: Path, metrics: Path, plot: Path | None, concurrency: int, *, prices: PriceTable,
        backend: Backend | None = None, store: AnswerStore | None = None) -> VerifyRun:
    work = read_work(manifest, responses, prompt.format)
    cached = cached_verdicts(out)
    checkers = Checkers(gemini, verify, clips_dir, cached, concurrency, backend)
    first_requests(work, checkers, verify)
    checkers.add(work)
    first = [r for item in work for p, r in sorted(item.requests.items())]
    if first and checkers.billed:  # what a paid backend answers is kept (a free one's is never stored)
        checkers.store = store or AnswerStore(answer_store_url())
    store = checkers.store
    if store is not None and (rescued := import_rescued(store)):
        print(f"verify: {rescued} answer(s) an earlier run could not keep are in the answer store now", file=sys.stderr)
    known = known_answers(first, store, cached, checkers.unreadable)
    pairs = sum(len(item.pairs) for item in work)
    checks = ", ".join([checkers.describe_blind_and_judge()] * verify.blind
                       + [f"grounding ({checkers.params[GROUND].model})"] * verify.grounded) or "none (both off)"
    if checkers.billed and first:
        estimate = estimate_checks(work, known, checkers, verify, prices)
        print(f"verify: {len(work)} answers, {pairs} QA pairs; checks: {checks}; {sum(r.key in known for r in first)} "
              f"of {len(first)} requests answered before ({store.url if store else 'no store'}); "
              f"{gemini.backend} {gemini.mode}: {estimate.describe('request(s)')}", file=sys.stderr)
        refuse_above(estimate, verify.max_cost_usd, "verify.max_cost_usd", "verify",
                     unpriced_model(checkers, verify, prices), prices.source, today_utc(),
                     "check fewer clips (-S data.limit=...), turn the grounding check off (-S verify.grounded=false), "
                     "use a cheaper verify.model, or gemini.mode=batch (discounted)", what="request(s)")
    else:
        estimate = CostEstimate(0, 0.0, 0, 0, 0.0)
        print(f"verify: {len(work)} answers, {pairs} QA pairs; checks: {checks}"
              + (f"; answers from the replay file {verify.replay_file} (examples written by hand: free, offline)"
                 if first and not checkers.billed else ""), file=sys.stderr)
    started = time.monotonic()
    rounds = ask_first_round(work, checkers, known)
    if not any(r.stopped for r in rounds) and verify.blind:
        judge_requests(work, {key: entry for r in rounds for key, entry in r.answers.items()}, checkers, verify)
        checkers.add(work)
        judges = [item.requests[JUDGE] for item in work if JUDGE in item.requests]
        if judges:
            rounds.append(checkers.asker(JUDGE).ask(judges))
    elapsed = time.monotonic() - started
    requests = [r for item in work for r in item.requests.values()]
    answers = all_answers(rounds, requests)
    records = [clip_verdicts(item, answers, verify) for item in work]
    facts = run_facts(rounds, len(requests), elapsed, estimate, checkers.billed, gemini.mode == "batch", prices)

    def write_outputs() -> None:
        write_jsonl(out, records)
        write_json(metrics, verify_metrics(records, verify, checkers.params, checkers.billed, gemini.mode == "batch",
                                           prices, today_utc()))
        if plot is not None:
            write_json(plot, verdict_plot(records))

    # Pairs a check failed to decide (not those left unverified by a check that is off), counted by reason.
    not_ok = [(r.key, p.reason) for r in records for p in r.pairs if p.reason and p.verdict is Verdict.unverified
              and not p.reason.startswith(("not_grounded", "no_check"))]
    retryable = [(key, f"{(e.error or 'failed').split(':', 1)[0]}") for key, e in answers.items() if e.retryable]
    finish_paid_run("verify", rounds, store, write_outputs, facts, end_summary(records, facts, checkers.billed),
                    not_ok, retryable, sum(e.is_final for e in answers.values()), len(answers), "check request")
    return VerifyRun(records, facts)


def ask_first_round(work: list[ClipWork], checkers: Checkers, known: KnownAnswers) -> list[Round]:
    """The blind requests, then the grounding requests (a model each), each through the answer store."""
    rounds = []
    for purpose in (BLIND, GROUND):
        requests = [item.requests[purpose] for item in work if purpose in item.requests]
        if requests:
            rounds.append(checkers.asker(purpose).ask(requests, known.only(r.key for r in requests)))
            if rounds[-1].stopped:
                break
    return rounds


def end_summary(records: list[ClipVerdicts], facts: dict[str, Any], billed: bool) -> str:
    verdicts: dict[str, int] = {}
    for record in records:
        for pair in record.pairs:
            verdicts[pair.verdict.value] = verdicts.get(pair.verdict.value, 0) + 1
    shares = ", ".join(f"{name} {n}" for name, n in sorted(verdicts.items())) or "no pair checked"
    if not billed:
        return f"verify: {shares}; {facts['calls']} answer(s) from the replay file, {facts['failed']} failed"
    cost = facts["cost_usd"]
    return (f"verify: {shares}; {facts['calls']} call(s) in {facts['elapsed_s']:.1f} s, "
            f"{describe_reuse(facts['reused_from'])}, {facts['retries']} retries, {facts['failed']} failed; "
            f"cost {'unknown' if cost is None else usd(cost)}")
