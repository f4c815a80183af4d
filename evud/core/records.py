"""The records that cross stage boundaries: the clip manifest, answers and Gemini results, LLaVA examples,
rejects. Each is defined once and imported everywhere, so bad input fails here with the item's id in the
message instead of three functions later with a KeyError. (Records read or written by one stage only live
with it: Ego4D metadata in evud.clips.ego4d, structured answer items in evud.dataset.answers, gold rows in
evud.dataset.gold.)"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Ego4D uids are uuids, but anything that will become a path component must at least be one.
_SAFE_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class UnsafeUidError(ValueError):
    """A uid that would escape or break the clip directory layout."""


# A file or folder name holds at most 255 bytes on every common filesystem (NAME_MAX).
MAX_UID_BYTES = 255


def check_path_safe_uid(uid: str, what: str) -> str:
    """Reject uids that are not a single, plain path component (no `/`, no `..`, no leading dot, at most 255 bytes)."""
    if not isinstance(uid, str) or not _SAFE_UID.match(uid) or ".." in uid:
        raise UnsafeUidError(f"{what} {uid!r} is not a plain path component; refusing to use it in a path")
    if len(uid.encode()) > MAX_UID_BYTES:
        raise UnsafeUidError(f"{what} {uid[:40] + '...'!r} is {len(uid.encode())} bytes; a file name holds at most "
                             f"{MAX_UID_BYTES}: give it a shorter id")
    return uid


# --- Pipeline records ------------------------------------------------------------------------------


class QueryIds(BaseModel):
    """The four Ego4D ids that name one language query, and so one clip of the dataset."""

    video_uid: str
    clip_uid: str
    annotation_uid: str
    language_query_index: int

    @property
    def key(self) -> str:
        # The published EVUD scripts joined the ids with '-' to key a query; keep that spelling.
        return f"{self.video_uid}-{self.clip_uid}-{self.annotation_uid}-{self.language_query_index}"

    @property
    def order(self) -> tuple[str, str, str, int]:
        """Where this query sorts in every output: by its ids, the query index as a number (9 before 10)."""
        return (self.video_uid, self.clip_uid, self.annotation_uid, self.language_query_index)

    def ids(self) -> QueryIds:
        return QueryIds(**{name: getattr(self, name) for name in QueryIds.model_fields})


class ClipStatus(str, Enum):
    ok = "ok"
    skipped = "skipped"  # the input says this query cannot become a clip (bad window, unknown video, ...)
    failed = "failed"  # it should have worked but did not (unreadable video, I/O error): worth a re-run


class ClipRecord(QueryIds):
    """One manifest line of prepare: a query's window and the clip cut for it (or why there is none)."""

    status: ClipStatus
    reason: str | None = None
    query: str | None = None
    template: str | None = None  # the NLQ template the annotator chose (e.g. "Objects: Where is object X ...?")
    window_start: float | None = None  # requested window, seconds in the source video
    window_end: float | None = None
    file_start: float | None = None  # what the clip file physically holds (stream copy starts at a keyframe)
    file_end: float | None = None
    duration: float | None = None  # window_end - window_start: the EVUD `duration_(s)`
    clip_path: str | None = None  # relative to the clips directory
    clip_uri: str | None = None  # gs:// copy, when uploaded
    cut_key: str | None = None  # what decided the clip's bytes (source, window, cut settings): its clip store key
    cut_mode: str | None = None  # exact (the file holds the window) or copy (a lead-in from the keyframe before it)
    sha256: str | None = None
    size_bytes: int | None = None
    # Which of Ego4D's files the clip was cut from (video_540ss or full_scale); absent (not null) for videos
    # data.video_url names, so their manifests keep their bytes.
    video_variant: str | None = Field(None, exclude_if=lambda value: value is None)


class ResponseStatus(str, Enum):
    ok = "ok"
    blocked = "blocked"  # safety, recitation, blocklist, prohibited content: do not retry with the same request
    truncated = "truncated"  # MAX_TOKENS: text is there but cut
    empty = "empty"  # a candidate without text
    rejected = "rejected"  # Vertex refused the request itself (400 INVALID_ARGUMENT): asked again only on demand
    failed = "failed"  # transport/API error after retries: retried on the next run


class Usage(BaseModel):
    prompt_tokens: int = 0
    prompt_audio_tokens: int = 0  # of prompt_tokens, the audio track's (priced apart on some models)
    output_tokens: int = 0  # the answer
    thoughts_tokens: int = 0  # thinking, billed as output
    total_tokens: int = 0


class AnswerFields(BaseModel):
    """What one request got, as an answer store entry and a line of responses.jsonl both hold it."""

    request_key: str
    model: str
    backend: str
    status: ResponseStatus
    finish_reason: str | None = None
    block_reason: str | None = None
    error: str | None = None  # failed only: `reason: detail`
    retryable: bool = False  # failed only: a later run may succeed (429, 5xx, timeout, dropped connection)
    text: str | None = None
    usage: Usage = Field(default_factory=Usage)
    response: dict[str, Any] | None = None  # the generateContent response JSON as received
    # When a billed answer arrived (UTC): it is priced at the price in force that day. None for free answers.
    answered_at: datetime | None = None


class AnswerEntry(AnswerFields):
    """The outcome of one request: an answer (any status but `failed`: final, kept in the answer store and
    never asked again) or a failure (never stored, so the next run asks again)."""

    batch_job: str | None = None  # the batch prediction job that answered, in batch mode

    @property
    def is_final(self) -> bool:
        return self.status is not ResponseStatus.failed


class GeminiResult(QueryIds, AnswerFields):
    """One line of generate's output: the answer (or failure) for one clip under the current params."""

    clip_sha256: str
    reasked_from: str | None = None  # the request key of a first answer cut at MAX_TOKENS, asked again with a larger budget

    def entry(self) -> AnswerEntry:
        """The answer this line holds, as the answer store keeps it (to reuse answers a lock recorded)."""
        return AnswerEntry(**{name: getattr(self, name) for name in AnswerFields.model_fields})


class Verdict(str, Enum):
    """What verify found about one QA pair (docs/verify.md)."""

    grounded = "grounded"  # needs the video (not answered blind) and the video supports the answer
    blind_answerable = "blind_answerable"  # a model given only the question gave the same answer
    unsupported = "unsupported"  # the video contradicts the answer, or does not show what it says
    unverified = "unverified"  # no check decided (a check off, failed, or unreadable): `reason` says which


class QAPair(BaseModel):
    """One question-answer pair as the EVUD tuples store it (`short answer` is the published key), with verify's
    verdict on it (absent in the published tuples; extra keys are ignored by LLaVA loaders, which read turns)."""

    model_config = ConfigDict(populate_by_name=True)
    category: str
    question: str
    short_answer: str = Field(alias="short answer")
    verdict: Verdict | None = None

    @field_validator("category", "question", "short_answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class CheckAnswer(AnswerFields):
    """The raw answer of one of verify's check requests about a clip (`purpose`: blind, judge or ground)."""

    purpose: str

    def entry(self) -> AnswerEntry:
        return AnswerEntry(**{name: getattr(self, name) for name in AnswerFields.model_fields})


class PairCheck(BaseModel):
    """One QA pair of a clip, what each check said about it, and the verdict."""

    id: int  # the pair's number in every check request about the clip (1, 2, ... in category order)
    category: str
    question: str
    answer: str
    blind_answer: str | None = None  # what the blind check answered (None: not asked, or it could not tell)
    blind: str | None = None  # cannot_tell / exact_match / judge_agree / judge_disagree (None: no blind result)
    support: str | None = None  # the grounding check: supported / contradicted / not visible (None: not checked)
    verdict: Verdict
    reason: str | None = None  # `code: detail`: why this verdict (always given for unverified)


class ClipVerdicts(QueryIds):
    """One line of verify's output: the checks of one clip's QA pairs, their raw answers and the verdicts."""

    answer_key: str  # generate's request key of the answer whose pairs were checked
    skipped: str | None = None  # why no pair was checked (the answer was not usable), `code: detail`
    pairs: list[PairCheck] = Field(default_factory=list)
    checks: list[CheckAnswer] = Field(default_factory=list)  # every check request's answer (or failure)


class Turn(BaseModel):
    from_: str = Field(alias="from")
    value: str
    model_config = ConfigDict(populate_by_name=True)


class LlavaRecord(BaseModel):
    """One training example in the field layout of the published ego4d_vqa_gemini.json."""

    model_config = ConfigDict(populate_by_name=True)
    id: str
    video: str
    ego4d_video_uid: str
    ego4d_clip_uid: str
    ego4d_annotation_uid: str
    ego4d_language_query_index: int
    duration: float = Field(alias="duration_(s)")
    human_annotated: bool = False
    conversations: list[Turn]
    category_question_answer_tuples: list[QAPair]

    @field_validator("conversations")
    @classmethod
    def _llava_turns(cls, turns: list[Turn]) -> list[Turn]:
        if not turns or len(turns) % 2:
            raise ValueError("conversations must be non-empty human/gpt pairs")
        for i, turn in enumerate(turns):
            expected = "human" if i % 2 == 0 else "gpt"
            if turn.from_ != expected:
                raise ValueError(f"turn {i} is from {turn.from_!r}, expected {expected!r}")
        video_tokens = sum(turn.value.count("<video>") for turn in turns)
        if video_tokens != 1 or not turns[0].value.startswith("<video>\n"):
            raise ValueError("<video> must appear exactly once, at the start of the first human turn")
        return turns

    def to_json_dict(self) -> dict[str, Any]:
        # exclude_none: a pair without a verdict (verify did not run) keeps the published tuple's three keys.
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RejectScope(str, Enum):
    clip = "clip"  # the whole clip is not in the dataset
    pair = "pair"  # one QA pair was dropped; the clip may still be in the dataset
    gold = "gold"  # a row of the gold answers file could not be applied


class Reject(BaseModel):
    """Why a clip, one of its QA pairs, or a gold answer is not in the dataset."""

    key: str  # the clip's query key (QueryIds.key)
    stage: str
    scope: RejectScope = RejectScope.clip
    reason: str  # a stable name, counted in the metrics
    detail: str | None = None
    category: str | None = None
    question: str | None = None
