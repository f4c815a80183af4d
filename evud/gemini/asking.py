"""Asking Gemini through the answer store: what generate and verify share, so that neither pays twice.

Answers already paid for are found first (the answer store, then any output DVC's cache holds, read by the
stage's own `CachedReader`); the rest is asked online on a thread pool (each request claimed, each final answer
stored the moment it arrives) or in batch jobs. A store that stops working stops every request not yet sent, and
the answers received but not kept are rescued; credentials the service refuses mid-run stop them too. A stage may say
which answers it cannot read (verify's JSON): those are asked again, a few times in a run, and never served from a
store or a cache. Nothing here knows what the requests are for.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from evud.core.errors import UserError
from evud.core.params import GeminiParams
from evud.core.progress import check_complete, progress_bar, summarise_failures, write_run_report
from evud.core.records import AnswerEntry, ResponseStatus, Usage
from evud.core.store import CachedVersion, ClaimWaits, cached_versions, store_root, write_atomic
from evud.gemini.answer_store import STORE_WHAT_TO_DO, AnswerStore, AnswerStoreError, describe_os_error, rescue_answers
from evud.gemini.backend import Backend, BackendError, failed_entry, rejected_entry, response_entry
from evud.gemini.request import GeminiRequest

_WAIT_FOR_OTHER_RUN_S = 0.25  # how often to look for an answer another run is asking for

# Whether a run may use an answer paid for instead of asking again.
Usable = Callable[[AnswerEntry], bool]
# Why an `ok` answer is not what its request asked for (verify's JSON), or None: a stage's own reading of answers.
Unreadable = Callable[[AnswerEntry], str | None]
# Attempts in one run at a request whose answers are unreadable; then it is recorded failed (retryable) with why.
UNREADABLE_ATTEMPTS = 3
UNREADABLE_ANSWER = "unreadable_answer"  # the error code such a request is recorded with
# The usable answers for some keys that a stage's outputs in DVC's cache hold (each key at most once).
CachedReader = Callable[[set[str], Usable], Iterable[AnswerEntry]]


class CredentialsRefused(UserError):
    """The service refused the credentials mid-run (a token that expired after the preflight passed): nothing more
    was asked, every answer received is kept; refresh the credentials and run again."""


@dataclass(frozen=True)
class Answered:
    """An answer (or failure) received by this run, with how long it took."""

    entry: AnswerEntry
    latency_s: float
    elsewhere: bool = False  # asked and stored by another run at the same time: not paid by this one
    asked: bool = True  # False: never sent (the answer store stopped working, or the credentials were refused, first)
    refused: bool = False  # the service refused the credentials: every later request would be refused too

    @property
    def received(self) -> bool:
        """An answer this run paid for and kept (not another run's, not a failure)."""
        return self.asked and not self.elsewhere and self.entry.is_final


def answer_entry(request: GeminiRequest, backend: Backend) -> Answered:
    """Call the backend once (it retries inside) and turn the outcome into an entry; never raises."""
    started = time.monotonic()
    try:
        response = backend.generate(request)
        answered_at = datetime.now(timezone.utc).replace(microsecond=0) if backend.billed else None
        entry = response_entry(request.key, request.model, backend.name, response, answered_at=answered_at)
    except BackendError as err:
        if err.credentials_refused:  # not this request's fault: asked again once the credentials are refreshed
            entry = failed_entry(request.key, request.model, backend.name, str(err), retryable=True)
            return Answered(entry, round(time.monotonic() - started, 3), refused=True)
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


def reusable(entry: AnswerEntry) -> bool:
    """A final answer, and not a rejection while EVUD_REASK_REJECTED asks rejections again."""
    return entry.is_final and not (entry.status is ResponseStatus.rejected and reask_rejected())


def usable_with(unreadable: Unreadable | None) -> Usable:
    """Reusable, and readable when the stage reads its answers (an unreadable one is asked again, never served)."""
    if unreadable is None:
        return reusable
    return lambda entry: reusable(entry) and (entry.status is not ResponseStatus.ok or unreadable(entry) is None)


def unreadable_failure(answers: list[AnswerEntry], problem: str) -> AnswerEntry:
    """The record of a request answered unreadably at every attempt: failed (retryable, never stored), with why, the
    last text, and the tokens of every attempt (each was paid)."""
    last = answers[-1]
    usage = Usage(**{name: sum(getattr(a.usage, name) for a in answers) for name in Usage.model_fields})
    error = f"{UNREADABLE_ANSWER}: {problem} ({len(answers)} attempt(s))"
    return last.model_copy(update={"status": ResponseStatus.failed, "error": error, "retryable": True,
                                   "usage": usage, "response": None})


_REQUEST_KEY = re.compile(rb'"request_key": ?"([0-9a-f]{64})"')  # as write_jsonl writes it, in any record


def cache_index_dir() -> Path:
    """Where the key index of each version of an out in DVC's cache is kept (by md5: never stale)."""
    return store_root() / "dvc-cache-index"


class CachedAnswers:
    """The answers the versions of one out in DVC's cache hold, found for one run.

    Versions are listed lazily, newest first, and only until every wanted key is found (a re-run whose answers the
    workspace's locked version holds asks git and the run cache nothing). Each version is indexed once (request
    key -> line, found by a pattern, not by parsing every record) and the index kept in the store by the version's
    md5, so a later lookup of keys no version holds reads indexes, not files, and a hit parses only its own lines.
    """

    def __init__(self, out: Path, entries_of: Callable[[bytes], Iterable[AnswerEntry]]):
        self.out, self.entries_of = out, entries_of  # `entries_of` reads the answers of one line
        self._listed: list[CachedVersion] = []
        self._listing: Iterator[CachedVersion] | None = None
        self._indexes: dict[str, dict[str, int]] = {}

    def versions(self) -> Iterator[CachedVersion]:
        """The versions, listed once per run: a later lookup goes on where the listing stopped."""
        listed = 0
        while True:
            if listed == len(self._listed):
                if self._listing is None:
                    self._listing = cached_versions(self.out.as_posix())
                version = next(self._listing, None)
                if version is None:
                    return
                self._listed.append(version)
            yield self._listed[listed]
            listed += 1

    def index(self, version: CachedVersion) -> dict[str, int] | None:
        """request key -> line number of a version, from memory or the store; None when never indexed."""
        if version.md5 not in self._indexes:
            try:
                text = (cache_index_dir() / f"{version.md5}.keys").read_text(encoding="ascii")
            except (OSError, ValueError):
                return None
            self._indexes[version.md5] = {key: int(n) for key, _, n in (line.partition(" ") for line in text.split("\n"))
                                          if n}
        return self._indexes[version.md5]

    def find(self, wanted: set[str], usable: Usable) -> Iterator[AnswerEntry]:
        """The usable answers for these keys (the newest version's first), each key once."""
        remaining = set(wanted)
        versions = self.versions()
        while remaining and (version := next(versions, None)) is not None:  # stop as soon as all are found
            index = self.index(version)
            if index is None:
                yield from self._read_and_index(version, remaining, usable)
                continue
            small, large = (remaining, index) if len(remaining) < len(index) else (index, remaining)
            lines = {index[key] for key in small if key in large}
            if lines:
                yield from self._read_lines(version, lines, remaining, usable)

    def _entries(self, line: bytes, remaining: set[str], usable: Usable) -> Iterator[AnswerEntry]:
        for entry in self.entries_of(line):
            if entry.request_key in remaining and usable(entry):
                remaining.discard(entry.request_key)
                yield entry

    def _read_lines(self, version: CachedVersion, lines: set[int], remaining: set[str],
                    usable: Usable) -> Iterator[AnswerEntry]:
        last = max(lines)
        with version.path.open("rb") as f:
            for number, line in enumerate(f):
                if number in lines:
                    yield from self._entries(line, remaining, usable)
                if number >= last:
                    return

    def _read_and_index(self, version: CachedVersion, remaining: set[str], usable: Usable) -> Iterator[AnswerEntry]:
        index: dict[str, int] = {}
        with version.path.open("rb") as f:
            for number, line in enumerate(f):
                keys = [key.decode() for key in _REQUEST_KEY.findall(line)]
                index.update(dict.fromkeys(keys, number))
                if any(key in remaining for key in keys):
                    yield from self._entries(line, remaining, usable)
        self._indexes[version.md5] = index
        try:  # for later runs; a store that cannot take it costs them a read, nothing else
            write_atomic(cache_index_dir() / f"{version.md5}.keys",
                         "".join(f"{key} {n}\n" for key, n in index.items()).encode("ascii"))
        except OSError:
            pass


def result_entries(line: bytes) -> list[AnswerEntry]:
    """The answer a responses.jsonl line holds (read straight into an entry: the clip's ids are not needed)."""
    return [AnswerEntry.model_validate_json(line)]


def cached_responses(out: Path) -> CachedReader:
    """Answers in any responses.jsonl (generate's out) DVC's cache holds."""
    return CachedAnswers(out, result_entries).find


class KnownAnswers(dict[str, AnswerEntry]):
    """Answers already paid for, by request key, and which of them DVC's cache served (the rest: the answer store)."""

    def __init__(self, entries: dict[str, AnswerEntry] | None = None, from_dvc_cache: Iterable[str] = ()):
        super().__init__(entries or {})
        self.from_dvc_cache = set(from_dvc_cache) & self.keys()

    def only(self, keys: Iterable[str]) -> KnownAnswers:
        return KnownAnswers({key: self[key] for key in keys if key in self}, self.from_dvc_cache)


def known_answers(requests: list[GeminiRequest], store: AnswerStore | None, cached: CachedReader,
                  unreadable: Unreadable | None = None) -> KnownAnswers:
    """Answers already paid for: the answer store, then the stage's outputs in DVC's cache (copied into the store).

    Without a store (a free backend: nothing was paid), nothing is looked up; DVC's cache is read only when the
    store lacks a key (opening it costs a third of a second per run)."""
    if store is None:
        return KnownAnswers()
    keys = {r.key for r in requests}
    # EVUD_REASK_REJECTED: the cause of the rejections was fixed: no copy of one is used (their answers replace them)
    usable = usable_with(unreadable)
    known = KnownAnswers({key: entry for key, entry in store.get_many(keys).items() if usable(entry)})
    if keys <= known.keys():
        return known
    for entry in cached(keys - known.keys(), usable):
        known[entry.request_key] = entry
        known.from_dvc_cache.add(entry.request_key)
        store.put(entry)  # the answer was paid for: keep it
    return known


class Asker:
    """Asks the backend for requests on a thread pool, storing each final answer the moment it arrives.

    On a local answer store each request is claimed first; a request another live run has claimed is
    set aside and its answer taken from the store once that run stored it (or asked here if it died).
    """

    def __init__(self, backend: Backend, store: AnswerStore | None, concurrency: int, stage: str = "generate",
                 unreadable: Unreadable | None = None):
        self.backend, self.stage, self.unreadable = backend, stage, unreadable
        self.usable = usable_with(unreadable)
        self.store = store if backend.billed else None
        self.waits = ClaimWaits(self.store.claims, stage) if self.store is not None and self.store.claims else None
        self.pool = ThreadPoolExecutor(max_workers=concurrency)
        # The first store error stops every request not yet sent: an answer that cannot be kept is never paid for.
        self.store_failure: BaseException | None = None
        # The first refusal of the credentials stops every request not yet sent: each would be refused too.
        self.refusal: str | None = None
        self.unsaved: list[AnswerEntry] = []  # answers received that the store could not keep
        self._lock = threading.Lock()

    def _store_failed(self, err: BaseException, unsaved: AnswerEntry | None = None) -> None:
        with self._lock:
            self.store_failure = self.store_failure or err
            if unsaved is not None:
                self.unsaved.append(unsaved)

    @property
    def stopped(self) -> bool:
        """Nothing more is sent: the store cannot keep an answer, or the service refuses the credentials."""
        return self.store_failure is not None or self.refusal is not None

    def _refused(self, answered: Answered) -> None:
        with self._lock:
            self.refusal = self.refusal or answered.entry.error

    def not_asked(self, request: GeminiRequest) -> Answered:
        why = ("credentials_refused: not asked: the service refused the credentials before this request was sent"
               if self.store_failure is None else
               "store_unwritable: not asked: the answer store stopped working before this request was sent")
        entry = failed_entry(request.key, request.model, self.backend.name, why, retryable=True)
        return Answered(entry, 0.0, asked=False)

    def ask(self, request: GeminiRequest) -> Answered | None:
        """Worker: None if another run holds the claim on this request."""
        if self.stopped:
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
            if self.stopped:  # failed while this one was being claimed
                return self.not_asked(request)
            answered = self.readable_answer(request)
            if answered.refused:
                self._refused(answered)
            if self.store is not None and answered.entry.is_final:
                try:
                    self.store.put(answered.entry)
                except Exception as err:  # noqa: BLE001  paid for: kept in memory, rescued at the end of the run
                    self._store_failed(err, answered.entry)
            return answered
        finally:
            if self.store is not None:
                self.store.release(request.key)

    def readable_answer(self, request: GeminiRequest) -> Answered:
        """Ask; an `ok` answer the stage cannot read is asked again, UNREADABLE_ATTEMPTS times in all, then recorded
        failed with why (retryable: the stage exits non-zero and the next run asks it again)."""
        unreadable: list[AnswerEntry] = []
        while True:
            answered = answer_entry(request, self.backend)
            entry = answered.entry
            problem = self.unreadable(entry) if self.unreadable and entry.status is ResponseStatus.ok else None
            if problem is None:
                return answered
            unreadable.append(entry)
            if len(unreadable) >= UNREADABLE_ATTEMPTS or self.stopped:
                return Answered(unreadable_failure(unreadable, problem), answered.latency_s)

    def answered_elsewhere(self, request: GeminiRequest) -> Answered | None:
        try:
            entry = self.store.get(request.key) if self.store is not None else None
        except Exception:  # noqa: BLE001  a store that cannot be read is no answer: asked here (or stopped)
            entry = None
        if entry is not None and not self.usable(entry):
            entry = None  # a rejection asked again on demand, or an unreadable answer: asked here
        return Answered(entry, 0.0, elsewhere=True) if entry is not None else None

    def ask_all(self, requests: list[GeminiRequest]) -> list[Answered]:
        answers: list[Answered] = []
        # Replay answers are read from a file in milliseconds: no bar (its rate would mean nothing).
        bar = progress_bar(len(requests), f"{self.stage}: {self.backend.name}", disable=not self.backend.billed)
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
                    elif self.stopped:
                        arrived.append(self.not_asked(request))
                    elif self.store is not None and self.store.claimed_elsewhere(request.key):
                        gave_up = self.waits.give_up(request.key, f"the answer to request {request.key[:12]}")
                        if gave_up is None:
                            still_aside.append(request)
                        else:  # said and capped: a live run that holds a request this long is stuck
                            entry = failed_entry(request.key, request.model, self.backend.name, gave_up, retryable=True)
                            arrived.append(Answered(entry, 0.0, asked=False))
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
            print(f"\n{self.stage}: interrupted; {len(answers)} answer(s) received are kept in the answer store. "
                  f"Waiting for the {in_flight} request(s) in flight, whose answers are paid for "
                  "(Ctrl-C again to abandon them).", file=sys.stderr)
            raise
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return answers


def store_failure_error(store: AnswerStore, err: BaseException, unsaved: list[AnswerEntry],
                        stage: str = "generate") -> AnswerStoreError:
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
    return AnswerStoreError(f"{stage}: the answer store {store.url} could not be written ({describe_os_error(err)}): "
                            f"stopped asking at once; {kept}; {STORE_WHAT_TO_DO}")


def credentials_refused_error(stage: str, refusal: str, received: int) -> CredentialsRefused:
    """The one line a run ends with when the service refused its credentials mid-run (a token that expired)."""
    return CredentialsRefused(f"{stage}: credentials refused after {received} answers: refresh them and re-run "
                              f"(every answer received is kept; the next run asks only the rest). The service "
                              f"said: {refusal}")



@dataclass
class Fetched:
    """What one round of asking got: the answers, the calls and retries it took, and a store that stopped working."""

    answers: list[Answered] = field(default_factory=list)
    calls: int = 0
    retries: int = 0
    store_failure: BaseException | None = None
    unsaved: list[AnswerEntry] = field(default_factory=list)
    refusal: str | None = None  # the service refused the credentials: nothing was asked after it


def readable_entry(entry: AnswerEntry, unreadable: Unreadable | None) -> AnswerEntry:
    """A batch job's answer, or its failure when the stage cannot read it (the next run asks it again)."""
    problem = unreadable(entry) if unreadable and entry.status is ResponseStatus.ok else None
    return entry if problem is None else unreadable_failure([entry], problem)


def fetch_answers(missing: list[GeminiRequest], gemini: GeminiParams, backend: Backend, store: AnswerStore | None,
                  clips_dir: Path, concurrency: int, stage: str = "generate",
                  unreadable: Unreadable | None = None) -> Fetched:
    """Ask for every missing request, online or in batch jobs."""
    if not missing:
        return Fetched()
    if gemini.mode == "batch":
        outcome = backend.ask_batch(missing, store, clips_dir, concurrency)
        return Fetched([Answered(readable_entry(e, unreadable), 0.0) for e in outcome.entries], outcome.rows,
                       outcome.resubmitted)
    retries_before = backend.retries_made()  # the backend counts across rounds; report this round's
    asker = Asker(backend, store, concurrency, stage, unreadable)
    answers = asker.ask_all(missing)
    return Fetched(answers, sum(a.asked and not a.elsewhere for a in answers),
                   backend.retries_made() - retries_before, asker.store_failure, asker.unsaved, asker.refusal)



@dataclass
class Round:
    """One round of asking: answers already paid for, and those this run got."""

    known: KnownAnswers
    fresh: list[Answered]
    calls: int = 0
    retries: int = 0
    store_failure: BaseException | None = None
    unsaved: list[AnswerEntry] = field(default_factory=list)
    refusal: str | None = None  # the service refused the credentials: nothing was asked after it

    @property
    def stopped(self) -> bool:
        """Nothing more may be asked in this run."""
        return self.store_failure is not None or self.refusal is not None

    @property
    def received(self) -> int:
        """Answers this round paid for and kept."""
        return sum(a.received for a in self.fresh)

    @property
    def answers(self) -> dict[str, AnswerEntry]:
        return {**self.known, **{a.entry.request_key: a.entry for a in self.fresh}}


class ModelAsker:
    """The requests of one run to one backend, asked through the answer store, the backend checked once before
    the first call."""

    def __init__(self, gemini: GeminiParams, backend: Backend, store: AnswerStore | None, clips_dir: Path,
                 cached: CachedReader, concurrency: int, stage: str = "generate", unreadable: Unreadable | None = None):
        self.gemini, self.backend, self.store = gemini, backend, store
        self.clips_dir, self.cached, self.concurrency, self.stage = clips_dir, cached, concurrency, stage
        self.unreadable = unreadable
        self._checked = False

    def ask(self, requests: list[GeminiRequest], known: KnownAnswers | None = None) -> Round:
        """Ask what is not already known (looked up here unless the caller already did)."""
        known = known_answers(requests, self.store, self.cached, self.unreadable) if known is None else known
        missing = list({r.key: r for r in requests if r.key not in known}.values())
        if not missing:
            return Round(known, [])
        if not self._checked:
            if self.store is not None:
                self.store.check_writable()  # a store that cannot keep an answer stops the run before it pays
            self.backend.check_ready()  # a setup mistake stops here, before any clip is asked
            self._checked = True
        fetched = fetch_answers(missing, self.gemini, self.backend, self.store, self.clips_dir, self.concurrency,
                                self.stage, self.unreadable)
        return Round(known, fetched.answers, fetched.calls, fetched.retries, fetched.store_failure, fetched.unsaved,
                     fetched.refusal)


def finish_paid_run(stage: str, rounds: list[Round], store: AnswerStore | None, write_outputs: Callable[[], None],
                    facts: dict, summary: str, not_ok: list[tuple[str, str]], retryable: list[tuple[str, str]],
                    succeeded: int, total: int, unit: str, over_budget: Exception | None = None) -> None:
    """The end of a run that asked a model (generate, verify): its outputs, run report, summary and failures by
    reason, then the one error it ends with, in this order of precedence: a store that stopped keeping answers (where
    the unsaved ones are), credentials refused mid-run, a budget that refused further calls, retryable failures."""
    store_failure = next((r.store_failure for r in rounds if r.store_failure is not None), None)
    try:
        write_outputs()
    except OSError:
        if store_failure is None:
            raise  # the store works: an output that cannot be written is the user's to see whole
        # The same full disk, most likely: what matters now is where the unsaved answers go (below).
    report = write_run_report(stage, facts)
    print(f"{summary}; run report {report}", file=sys.stderr)
    print(summarise_failures(stage, not_ok), file=sys.stderr)
    if store_failure is not None and store is not None:
        raise store_failure_error(store, store_failure, [e for r in rounds for e in r.unsaved], stage=stage)
    if refusal := next((r.refusal for r in rounds if r.refusal is not None), None):
        raise credentials_refused_error(stage, refusal, sum(r.received for r in rounds))
    if over_budget is not None:
        raise over_budget
    check_complete(stage, retryable, succeeded, total, unit, "asks")


def reused_from(rounds: Iterable[Round]) -> dict[str, int]:
    """Where the answers a run reused came from (the run report): the answer store, DVC's cache (outputs it holds),
    or another run that asked them at the same time."""
    counts: Counter[str] = Counter()
    for round_ in rounds:
        cached = round_.known.from_dvc_cache if isinstance(round_.known, KnownAnswers) else set()
        counts["answer_store"] += len(round_.known.keys() - cached)
        counts["dvc_cache"] += len(round_.known.keys() & cached)
        counts["another_run"] += sum(a.elsewhere for a in round_.fresh)
    return {source: counts[source] for source in ("answer_store", "dvc_cache", "another_run")}


def describe_reuse(reused: dict[str, int]) -> str:
    """`7 answer(s) reused (5 from the answer store, 2 from DVC's cache)`."""
    parts = [f"{reused['answer_store']} from the answer store", f"{reused['dvc_cache']} from DVC's cache"]
    if reused["another_run"]:
        parts.append(f"{reused['another_run']} asked by another run")
    return f"{sum(reused.values())} answer(s) reused ({', '.join(parts)})"
