"""The backend boundary: what generate asks of any backend, and what an answer becomes.

A backend turns a GeminiRequest into a generateContent response (google-genai's typed
GenerateContentResponse) or raises BackendError, and says what the stage needs to know about it: whether
its answers are billed, how many retries it made, whether it can run batch jobs, whether its setup works.
The protocol names no vendor; the backends live in evud.gemini.backends, one module each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from google.genai import types

from evud.core.records import AnswerEntry, ResponseStatus, Usage
from evud.gemini.request import GeminiRequest

if TYPE_CHECKING:
    from evud.gemini.answer_store import AnswerStore

# finishReasons that mean "the service refused to answer this": retrying the same request will not help.
_BLOCKING_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}


class BackendError(Exception):
    """A request failed after the backend's retries; the clip is recorded `failed` and asked again next run.

    `retryable`: a later run may succeed (429, 5xx, timeout, dropped connection), so the stage exits non-zero
    to make DVC run it again; otherwise (a bad request, a clip too large) only a change of input helps.
    """

    def __init__(self, message: str, retryable: bool = False, rejected: bool = False,
                 credentials_refused: bool = False):
        super().__init__(message)
        self.retryable = retryable
        # The service refused the credentials (401/403 after a passing preflight: a token that expired mid-run).
        # Every later request would be refused too: the stage stops asking, keeps what it received and exits 1.
        self.credentials_refused = credentials_refused
        # Vertex answered that the request itself is invalid (400): final, kept like an answer, so the same request
        # (with its whole inline clip) is not sent again on every later run; EVUD_REASK_REJECTED=1 asks it again.
        self.rejected = rejected


@dataclass(frozen=True)
class Classified:
    status: ResponseStatus
    text: str | None
    finish_reason: str | None
    block_reason: str | None
    usage: Usage


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, "value", None) or str(value)


def usage_of(meta: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    """Tokens as Vertex counted them: prompt (and its audio part), answer, thinking, total."""
    if meta is None:
        return Usage()
    audio = sum(d.token_count or 0 for d in meta.prompt_tokens_details or [] if _enum_name(d.modality) == "AUDIO")
    return Usage(prompt_tokens=meta.prompt_token_count or 0, prompt_audio_tokens=audio,
                 output_tokens=meta.candidates_token_count or 0, thoughts_tokens=meta.thoughts_token_count or 0,
                 total_tokens=meta.total_token_count or 0)


def classify_response(response: types.GenerateContentResponse) -> Classified:
    """ok / blocked / truncated / empty (or failed: no candidate and no reason), with the finishReason or
    blockReason that says why."""
    usage = usage_of(response.usage_metadata)
    block = response.prompt_feedback and _enum_name(response.prompt_feedback.block_reason)
    if block:
        return Classified(ResponseStatus.blocked, None, None, block, usage)
    if not response.candidates:  # no answer and no reason: a glitch, not a refusal (asked again next run)
        return Classified(ResponseStatus.failed, None, None, None, usage)
    candidate = response.candidates[0]
    finish = _enum_name(candidate.finish_reason)
    parts = (candidate.content and candidate.content.parts) or []
    text = "".join(p.text for p in parts if p.text and not p.thought) or None
    if finish in _BLOCKING_FINISH:
        return Classified(ResponseStatus.blocked, text, finish, finish, usage)
    if finish == "MAX_TOKENS":  # thinking may have eaten the whole budget: no text at all
        return Classified(ResponseStatus.truncated, text, finish, None, usage)
    if text is None:
        return Classified(ResponseStatus.empty, None, finish, None, usage)
    return Classified(ResponseStatus.ok, text, finish, None, usage)


def response_entry(request_key: str, model: str, backend: str, response: types.GenerateContentResponse,
                   batch_job: str | None = None, answered_at: datetime | None = None) -> AnswerEntry:
    """The entry for an answer received (of any status but failed); `answered_at` for a billed one."""
    classified = classify_response(response)
    if classified.status is ResponseStatus.failed:
        return failed_entry(request_key, model, backend, "no_candidates: the response holds no candidate and no "
                            "block reason", retryable=True, batch_job=batch_job)
    return AnswerEntry(request_key=request_key, model=model, backend=backend, status=classified.status,
                       text=classified.text, finish_reason=classified.finish_reason,
                       block_reason=classified.block_reason, usage=classified.usage,
                       response=response.model_dump(mode="json", exclude_none=True, by_alias=True), batch_job=batch_job,
                       answered_at=answered_at)


def rejected_entry(request_key: str, model: str, backend: str, error: str) -> AnswerEntry:
    """The entry for a request Vertex refused as invalid: final (stored), never retried by itself."""
    return AnswerEntry(request_key=request_key, model=model, backend=backend, status=ResponseStatus.rejected,
                       error=error)


def failed_entry(request_key: str, model: str, backend: str, error: str, retryable: bool,
                 batch_job: str | None = None) -> AnswerEntry:
    """The entry for a request that got no answer; it is never stored, so the next run asks again."""
    return AnswerEntry(request_key=request_key, model=model, backend=backend, status=ResponseStatus.failed,
                       error=error, retryable=retryable, batch_job=batch_job)


@dataclass
class BatchOutcome:
    """What the batch jobs of one run gave: an entry per request, and how many rows and re-submissions it took."""

    entries: list[AnswerEntry] = field(default_factory=list)
    resubmitted: int = 0  # requests sent again after failing or going missing in a job
    rows: int = 0  # request rows of every job collected (each a billed request when answered)
    jobs: list[str] = field(default_factory=list)


class Backend(Protocol):
    name: str
    billed: bool  # answers cost money: keep them in the answer store (replay answers are free and are not kept)
    supports_batch: bool  # can answer many requests as batch jobs (gemini.mode=batch)

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        """Answer one request, or raise BackendError once retries are exhausted."""
        ...

    def retries_made(self) -> int:
        """Retries made so far by this backend (for progress and the run report)."""
        ...

    def check_ready(self) -> None:
        """Raise a UserError saying what to do if the backend cannot answer (credentials, access, model)."""
        ...

    def ask_batch(self, requests: list[GeminiRequest], store: AnswerStore, clips_dir: Path,
                  concurrency: int) -> BatchOutcome:
        """Answer requests in batch jobs, storing each final answer; only when supports_batch."""
        ...
