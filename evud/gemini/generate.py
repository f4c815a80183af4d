"""The generate stage's work: ask Gemini about every `ok` clip of the manifest, paying once per answer.

Answers already paid for are reused: those in the answer store (evud.gemini.answer_store; outside every DVC
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
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from evud.core.errors import UserError
from evud.core.jsonl import read_jsonl, write_json, write_jsonl
from evud.core.params import GeminiParams, PromptParams
from evud.core.progress import check_complete, progress_bar, summarise_failures, write_run_report
from evud.core.records import AnswerEntry, ClipRecord, ClipStatus, GeminiResult, ResponseStatus
from evud.core.store import answer_store_url, cached_versions
from evud.gemini.answer_store import (
    STORE_WHAT_TO_DO,
    AnswerStore,
    AnswerStoreError,
    describe_os_error,
    import_rescued,
    rescue_answers,
)
from evud.gemini.backend import Backend, BackendError, failed_entry, rejected_entry, response_entry
from evud.gemini.backends import make_backend
from evud.gemini.cost import CostEstimate, check_budget, estimate_cost, usage_cost
from evud.gemini.prices import PriceTable, today_utc
from evud.gemini.request import GeminiRequest, build_request

_WAIT_FOR_OTHER_RUN_S = 0.25  # how often to look for an answer another run is asking for


def ok_clips(manifest: Path) -> list[ClipRecord]:
    clips = [ClipRecord.model_validate(r) for r in read_jsonl(manifest)]
    return [c for c in clips if c.status is ClipStatus.ok]


@dataclass(frozen=True)
class Answered:
    """An answer (or failure) received by this run, with how long it took."""

    entry: AnswerEntry
    latency_s: float
    elsewhere: bool = False  # asked and stored by another run at the same time: not paid by this one
    asked: bool = True  # False: never sent (the answer store stopped working first)


def answer_entry(request: GeminiRequest, backend: Backend) -> Answered:
    """Call the backend once (it retries inside) and turn the outcome into an entry; never raises."""
    started = time.monotonic()
    try:
        response = backend.generate(request)
        answered_at = datetime.now(timezone.utc).replace(microsecond=0) if backend.billed else None
        entry = response_entry(request.key, request.model, backend.name, response, answered_at=answered_at)
    except BackendError as err:
        entry = (rejected_entry(request.key, request.model, backend.name, str(err)) if err.rejected else
                 failed_entry(request.key, request.model, backend.name, str(err), retryable=err.retryable))
    except Exception as err:  # noqa: BLE001  an answer the SDK cannot read must not stop 13,000 paid calls
        # A 200 the SDK cannot read is most often a proxy's error page: worth asking again.
        entry = failed_entry(request.key, request.model, backend.name,
                             f"unexpected_error: {type(err).__name__}: {err}", retryable=True)
    return Answered(entry, round(time.monotonic() - started, 3))


def reask_rejected() -> bool:
    """EVUD_REASK_REJECTED=1: requests Vertex rejected as invalid are asked again (not a param: it changes no request)."""
    return os.environ.get("EVUD_REASK_REJECTED", "").strip().lower() in ("1", "true", "yes")


def cached_answers(out: Path, wanted: set[str]) -> Iterator[AnswerEntry]:
    """The final answers for these keys that any responses file in DVC's cache holds (the last locked one first;
    DVC deletes the file itself before a re-run), each key once."""
    for version in cached_versions(out.as_posix()):
        for record in read_jsonl(version):
            result = GeminiResult.model_validate(record)
            if result.request_key in wanted and result.status is not ResponseStatus.failed:
                wanted = wanted - {result.request_key}
                yield result.entry()
        if not wanted:
            return


def known_answers(requests: list[GeminiRequest], store: AnswerStore | None, out: Path) -> dict[str, AnswerEntry]:
    """Answers already paid for: the answer store, then any responses file in DVC's cache (copied into the store).

    Without a store (a free backend: nothing was paid), nothing is looked up; DVC's cache is read only when the
    store lacks a key (opening it costs a third of a second per run)."""
    if store is None:
        return {}
    keys = {r.key for r in requests}
    known = store.get_many(keys)
    if reask_rejected():  # the cause of the rejections was fixed: ask them again (their answers replace them)
        known = {key: entry for key, entry in known.items() if entry.status is not ResponseStatus.rejected}
    if keys <= known.keys():
        return known
    for entry in cached_answers(out, keys - known.keys()):
        known[entry.request_key] = entry
        store.put(entry)  # the answer was paid for: keep it
    return known


class Asker:
    """Asks the backend for requests on a thread pool, storing each final answer the moment it arrives.

    On a local answer store each request is claimed first; a request another live run has claimed is
    set aside and its answer taken from the store once that run stored it (or asked here if it died).
    """

    def __init__(self, backend: Backend, store: AnswerStore | None, concurrency: int):
        self.backend = backend
        self.store = store if backend.billed else None
        self.pool = ThreadPoolExecutor(max_workers=concurrency)
        # The first store error stops every request not yet sent: an answer that cannot be kept is never paid for.
        self.store_failure: BaseException | None = None
        self.unsaved: list[AnswerEntry] = []  # answers received that the store could not keep
        self._lock = threading.Lock()

    def _store_failed(self, err: BaseException, unsaved: AnswerEntry | None = None) -> None:
        with self._lock:
            self.store_failure = self.store_failure or err
            if unsaved is not None:
                self.unsaved.append(unsaved)

    def not_asked(self, request: GeminiRequest) -> Answered:
        entry = failed_entry(request.key, request.model, self.backend.name, "store_unwritable: not asked: the answer "
                             "store stopped working before this request was sent", retryable=True)
        return Answered(entry, 0.0, asked=False)

    def ask(self, request: GeminiRequest) -> Answered | None:
        """Worker: None if another run holds the claim on this request."""
        if self.store_failure is not None:
            return self.not_asked(request)
        if self.store is not None:
            try:
                if not self.store.claim(request.key):
                    return None
            except Exception as err:  # noqa: BLE001  a full or read-only disk: this request is not sent
                self._store_failed(err)
                return self.not_asked(request)
        try:
            # Another run may have stored this answer since this run looked (and released its claim).
            stored = self.answered_elsewhere(request)
            if stored is not None:
                return stored
            if self.store_failure is not None:  # failed while this one was being claimed
                return self.not_asked(request)
            answered = answer_entry(request, self.backend)
            if self.store is not None and answered.entry.is_final:
                try:
                    self.store.put(answered.entry)
                except Exception as err:  # noqa: BLE001  paid for: kept in memory, rescued at the end of the run
                    self._store_failed(err, answered.entry)
            return answered
        finally:
            if self.store is not None:
                self.store.release(request.key)

    def answered_elsewhere(self, request: GeminiRequest) -> Answered | None:
        try:
            entry = self.store.get(request.key) if self.store is not None else None
        except Exception:  # noqa: BLE001  a store that cannot be read is no answer: asked here (or stopped)
            entry = None
        if entry is not None and entry.status is ResponseStatus.rejected and reask_rejected():
            entry = None  # asked again on demand, here
        return Answered(entry, 0.0, elsewhere=True) if entry is not None else None

    def ask_all(self, requests: list[GeminiRequest]) -> list[Answered]:
        answers: list[Answered] = []
        # Replay answers are read from a file in milliseconds: no bar (its rate would mean nothing).
        bar = progress_bar(len(requests), f"generate: {self.backend.name}", disable=not self.backend.billed)
        futures: dict[Future, GeminiRequest] = {self.pool.submit(self.ask, r): r for r in requests}
        set_aside: list[GeminiRequest] = []
        failures = 0
        try:
            while futures or set_aside:
                done, _ = wait(futures, timeout=_WAIT_FOR_OTHER_RUN_S if set_aside else None,
                               return_when=FIRST_COMPLETED)
                if not futures:
                    time.sleep(_WAIT_FOR_OTHER_RUN_S)
                arrived = []
                for future in done:
                    request = futures.pop(future)
                    answered = future.result()
                    if answered is None:
                        set_aside.append(request)
                    else:
                        arrived.append(answered)
                still_aside = []
                for request in set_aside:
                    answered = self.answered_elsewhere(request)
                    if answered is not None:
                        arrived.append(answered)
                    elif self.store_failure is not None:
                        arrived.append(self.not_asked(request))
                    elif self.store is not None and self.store.claimed_elsewhere(request.key):
                        still_aside.append(request)
                    else:  # its run died or failed to answer: ask here
                        futures[self.pool.submit(self.ask, request)] = request
                set_aside = still_aside
                answers += arrived
                failures += sum(not a.entry.is_final for a in arrived)
                bar.update(len(arrived))
                bar.set_postfix(failed=failures, retries=self.backend.retries_made(), waiting=len(set_aside),
                                refresh=False)
        except KeyboardInterrupt:
            in_flight = sum(f.running() for f in futures)
            print(f"\ngenerate: interrupted; {len(answers)} answer(s) received are kept in the answer store. "
                  f"Waiting for the {in_flight} request(s) in flight, whose answers are paid for "
                  "(Ctrl-C again to abandon them).", file=sys.stderr)
            raise
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return answers


def store_failure_error(store: AnswerStore, err: BaseException, unsaved: list[AnswerEntry]) -> AnswerStoreError:
    """The one line a run ends with when its store stopped keeping answers: which store, why, where every answer
    received but not kept is now, and what to do."""
    if not unsaved:
        kept = "no answer received was lost"
    else:
        saved_in, problems = rescue_answers(store, unsaved)
        kept = (f"the {len(unsaved)} answer(s) received that it could not keep are saved in {saved_in} (the next run "
                "puts them in the store: they are not paid again)" if saved_in is not None else
                f"the {len(unsaved)} answer(s) received that it could not keep could not be saved anywhere either "
                f"({'; '.join(problems)})")
    return AnswerStoreError(f"generate: the answer store {store.url} could not be written ({describe_os_error(err)}): "
                            f"stopped asking at once; {kept}; {STORE_WHAT_TO_DO}")


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(int(fraction * len(sorted_values)), len(sorted_values) - 1)], 3)


def not_ok_reason(result: GeminiResult) -> str:
    """`status:reason` for a result that is not ok, e.g. failed:api_error_429, blocked:SAFETY, truncated:MAX_TOKENS."""
    if result.status in (ResponseStatus.failed, ResponseStatus.rejected):
        return f"{result.status.value}:{(result.error or 'unknown').split(':', 1)[0]}"
    return f"{result.status.value}:{result.block_reason or result.finish_reason or 'unknown'}"


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


def run_facts(fresh: list[Answered], calls: int, known: int, requests: int, gemini: GeminiParams,
              estimate: CostEstimate, retries: int, elapsed_s: float, billed: bool, prices: PriceTable,
              today: date) -> dict[str, Any]:
    """Facts of this run only (untracked report and log): calls, reuse, retries, latency, rate, spend."""
    latencies = sorted(a.latency_s for a in fresh if a.latency_s)
    paid = [a.entry for a in fresh if not a.elsewhere]
    usages = [entry.usage for entry in paid]
    return {
        "requests": requests,
        "reused_answers": known + sum(a.elsewhere for a in fresh),
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
            f" ({facts['requests_per_minute'] or 0:.0f}/min), {facts['reused_answers']} answer(s) reused,"
            f" {facts['retries']} retries, {facts['failed']} failed;"
            f" tokens in/out {facts['calls_tokens_in']:,}/{facts['calls_tokens_out']:,};"
            f" cost {'unknown' if cost is None else f'${cost:,.4f}'}")


@dataclass
class Fetched:
    """What one round of asking got: the answers, the calls and retries it took, and a store that stopped working."""

    answers: list[Answered] = field(default_factory=list)
    calls: int = 0
    retries: int = 0
    store_failure: BaseException | None = None
    unsaved: list[AnswerEntry] = field(default_factory=list)


def fetch_answers(missing: list[GeminiRequest], gemini: GeminiParams, backend: Backend, store: AnswerStore | None,
                  clips_dir: Path, concurrency: int) -> Fetched:
    """Ask for every missing request, online or in batch jobs."""
    if not missing:
        return Fetched()
    if gemini.mode == "batch":
        outcome = backend.ask_batch(missing, store, clips_dir, concurrency)
        return Fetched([Answered(e, 0.0) for e in outcome.entries], outcome.rows, outcome.resubmitted)
    retries_before = backend.retries_made()  # the backend counts across rounds; report this round's
    asker = Asker(backend, store, concurrency)
    answers = asker.ask_all(missing)
    return Fetched(answers, sum(a.asked and not a.elsewhere for a in answers),
                   backend.retries_made() - retries_before, asker.store_failure, asker.unsaved)


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


def better_answer(first: AnswerEntry, again: AnswerEntry | None) -> tuple[AnswerEntry, bool]:
    """The answer the dataset uses, and whether it is the re-asked one: complete beats cut, longer beats shorter."""
    if again is None or not again.is_final:
        return first, False
    if again.status is ResponseStatus.ok or len(again.text or "") > len(first.text or ""):
        return again, True
    return first, False


@dataclass
class Round:
    """One round of asking: answers already paid for, and those this run got."""

    known: dict[str, AnswerEntry]
    fresh: list[Answered]
    calls: int = 0
    retries: int = 0
    store_failure: BaseException | None = None
    unsaved: list[AnswerEntry] = field(default_factory=list)

    @property
    def answers(self) -> dict[str, AnswerEntry]:
        return {**self.known, **{a.entry.request_key: a.entry for a in self.fresh}}


class Generation:
    """The requests of one run, asked through the answer store, with the backend checked once before any call."""

    def __init__(self, gemini: GeminiParams, backend: Backend, store: AnswerStore | None, clips_dir: Path, out: Path,
                 concurrency: int):
        self.gemini, self.backend, self.store = gemini, backend, store
        self.clips_dir, self.out, self.concurrency = clips_dir, out, concurrency
        self._checked = False

    def ask(self, requests: list[GeminiRequest], known: dict[str, AnswerEntry] | None = None) -> Round:
        """Ask what is not already known (looked up here unless the caller already did)."""
        known = known_answers(requests, self.store, self.out) if known is None else known
        missing = list({r.key: r for r in requests if r.key not in known}.values())
        if not missing:
            return Round(known, [])
        if not self._checked:
            if self.store is not None:
                self.store.check_writable()  # a store that cannot keep an answer stops the run before it pays
            self.backend.check_ready()  # a setup mistake stops here, before any clip is asked
            self._checked = True
        fetched = fetch_answers(missing, self.gemini, self.backend, self.store, self.clips_dir, self.concurrency)
        return Round(known, fetched.answers, fetched.calls, fetched.retries, fetched.store_failure, fetched.unsaved)


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
    return sorted(results, key=lambda r: (r.video_uid, r.clip_uid, r.annotation_uid, r.language_query_index))


def run(gemini: GeminiParams, prompt: PromptParams, manifest: Path, clips_dir: Path, out: Path, metrics: Path,
        concurrency: int, *, prices: PriceTable, backend: Backend | None = None,
        store: AnswerStore | None = None) -> GenerateRun:
    requests = [build_request(clip, gemini, prompt) for clip in ok_clips(manifest)]  # checks gemini.generation
    today = today_utc()
    backend = backend or make_backend(gemini, clips_dir)
    if gemini.mode == "batch" and not backend.supports_batch:
        raise UserError(f"gemini.mode=batch needs a backend that runs batch jobs; {backend.name} does not "
                        "(use gemini.backend=vertex)")
    if store is None and backend.billed:
        store = AnswerStore(answer_store_url())
    generation = Generation(gemini, backend, store, clips_dir, out, concurrency)
    if store is not None and (rescued := import_rescued(store)):
        print(f"generate: {rescued} answer(s) an earlier run could not keep are in the answer store now", file=sys.stderr)
    known = known_answers(requests, store, out)
    estimate = estimate_cost(list({r.key: r for r in requests if r.key not in known}.values()), gemini,
                             prices.price_on(gemini.model, today))
    if backend.billed:
        print(f"generate: {len(requests)} clips, {sum(r.key in known for r in requests)} answered before"
              f" ({store.url}); {gemini.backend} {gemini.mode} model {gemini.model} in {gemini.location}:"
              f" {estimate.describe()}", file=sys.stderr)
    else:
        print(f"generate: {len(requests)} clips; answers from the replay file {gemini.replay_file} (examples "
              "written by hand: free, offline, never stored)", file=sys.stderr)
    if backend.billed:
        check_budget(estimate, gemini, prices.source, today)
    started = time.monotonic()
    first = generation.ask(requests, known)  # the store is listed and read once, not once per estimate and round
    # Answers cut at MAX_TOKENS: asked once more with a larger budget (their own keys), not the whole run.
    again = {r.key: retry for r in requests if gemini.retry_truncated
             and (entry := first.answers.get(r.key)) is not None and entry.status is ResponseStatus.truncated
             and (retry := reasked(r)) is not None}
    if first.store_failure is not None:
        again = {}  # nothing more is asked once the store cannot keep an answer
    second = generation.ask(list(again.values())) if again else Round({}, [])
    elapsed = time.monotonic() - started
    store_failure = first.store_failure or second.store_failure
    not_asked = failed_entry("", gemini.model, backend.name, "not_requested: the run ended before asking", retryable=True)
    results = final_results(requests, first.answers, again, second.answers, not_asked)
    try:
        write_jsonl(out, results)
        write_json(metrics, generate_metrics(results, gemini, backend.billed, prices, today))
    except OSError:
        if store_failure is None:
            raise  # the store works: an output that cannot be written is the user's to see whole
        # The same full disk, most likely: what matters now is where the unsaved answers go (below).
    facts = run_facts(first.fresh + second.fresh, first.calls + second.calls,
                      len(first.known) + len(second.known), len(requests) + len(again), gemini, estimate,
                      first.retries + second.retries, elapsed, backend.billed, prices, today)
    report = write_run_report("generate", facts)
    print(end_summary(facts, backend.billed) + f"; run report {report}", file=sys.stderr)
    # `failed:api_error_503: UNAVAILABLE: ...`, `blocked:SAFETY: SAFETY`: counted by reason, as the metrics are.
    not_ok = [(r.key, f"{not_ok_reason(r)}: {r.error or r.block_reason or r.finish_reason}") for r in results
              if r.status is not ResponseStatus.ok]
    print(summarise_failures("generate", not_ok), file=sys.stderr)
    if store_failure is not None and store is not None:
        raise store_failure_error(store, store_failure, first.unsaved + second.unsaved)
    retryable = [(r.key, not_ok_reason(r)) for r in results if r.retryable]
    retryable += [(key, f"reask:{(e.error or '').split(':', 1)[0]}") for key, retry in again.items()
                  if (e := second.answers.get(retry.key)) is not None and e.retryable]
    check_complete("generate", retryable, sum(r.status is not ResponseStatus.failed for r in results), len(results),
                   "clip", "asks")
    return GenerateRun(results, facts)
