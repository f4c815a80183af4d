"""verify's three checks of a clip's QA pairs as Gemini requests, and their structured answers read back.

- blind: the questions (never the answers) with no video part; for each, a short answer or `cannot_tell`;
- judge: question, video answer and blind answer, text only; for each, agree or disagree;
- ground: the clip and its pairs; for each answer, supported / contradicted / not visible.

One request per clip and check, the pairs numbered 1, 2, ... in category order in every request, so that each
answer item names its pair. The prompts are params (conf/verify/); the JSON schemas are derived here from the models
that read the answers. A free, normalised exact match decides agreement before any judge request.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from evud.core.domain import CATEGORY_ORDER
from evud.core.params import GeminiParams, VerifyParams
from evud.core.records import ClipRecord, GeminiResult, ResponseStatus
from evud.dataset.answers import parse_answer, strip_code_fence
from evud.gemini.request import GeminiRequest, check_video_fps, generation_config, video_input

BLIND, JUDGE, GROUND = "blind", "judge", "ground"
ITEMS = "{items}"  # where a prompt takes its items

SUPPORT = ("supported", "contradicted", "not visible")


# --- answers: the models that read them, and the schemas asked for, derived from them ---------------


class _Item(BaseModel):
    # Read leniently (extra keys ignored, a missing optional field defaulted); asked strictly: the schema sent
    # requires every field (serialization mode with defaults required).
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, json_schema_serialization_defaults_required=True)
    id: int


class BlindItem(_Item):
    answer: str = ""
    cannot_tell: bool = False


class JudgeItem(_Item):
    verdict: Literal["agree", "disagree"]


class GroundItem(_Item):
    support: Literal[SUPPORT]


class _BlindAnswer(BaseModel):
    answers: list[BlindItem]


class _JudgeAnswer(BaseModel):
    verdicts: list[JudgeItem]


class _GroundAnswer(BaseModel):
    verdicts: list[GroundItem]


# The keywords of JSON Schema both Vertex's responseJsonSchema and OpenAI-compatible servers' json_schema accept.
_SCHEMA_KEYWORDS = ("type", "properties", "items", "required", "enum")


def response_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema a check asks its answer in, derived from the model that reads it: references inlined, titles
    and defaults dropped (the subset Vertex and OpenAI accept). Part of each check's request key."""
    schema = model.model_json_schema(mode="serialization")
    definitions = schema.get("$defs", {})

    def subset(node: Any) -> Any:
        if isinstance(node, list):
            return [subset(x) for x in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return subset(definitions[node["$ref"].rsplit("/", 1)[-1]])
        return {key: ({name: subset(v) for name, v in value.items()} if key == "properties" else subset(value))
                for key, value in node.items() if key in _SCHEMA_KEYWORDS}

    return subset(schema)


BLIND_SCHEMA = response_schema(_BlindAnswer)
JUDGE_SCHEMA = response_schema(_JudgeAnswer)
GROUND_SCHEMA = response_schema(_GroundAnswer)


@dataclass(frozen=True)
class Pair:
    """A QA pair as verify checks it: its number in the clip's check requests, and its text."""

    id: int
    category: str
    question: str
    answer: str


# --- the pairs of an answer ------------------------------------------------------------------------


def answer_pairs(result: GeminiResult, answer_format: str) -> tuple[list[Pair], str | None]:
    """The pairs of one generate answer, read by postprocess's parser, numbered in category order; or why none.

    Every pair the parser recovers is checked (postprocess's policy, which may drop some, applies after)."""
    if result.status not in (ResponseStatus.ok, ResponseStatus.truncated):
        return [], f"response_{result.status.value}: {result.block_reason or result.error or result.finish_reason}"
    parsed = parse_answer(result.text or "", answer_format, truncated=result.status is ResponseStatus.truncated)
    triples = sorted(parsed.pairs, key=lambda p: CATEGORY_ORDER[p.category])
    if not triples:
        return [], "no_pairs: the parser found no usable QA pair in the answer"
    return [Pair(i, c, q, a) for i, (c, q, a) in enumerate(triples, 1)], None


# --- requests --------------------------------------------------------------------------------------


def check_params(gemini: GeminiParams, verify: VerifyParams, model: str, backend: str | None = None,
                 base_url: str | None = None) -> GeminiParams:
    """gemini's backend settings (project, location, mode, ...) with the check's model, budget and generation, and
    its own backend and server when it names them (a server of another backend is never gemini's)."""
    where = {} if backend is None or backend == gemini.backend else {"backend": backend, "base_url": None}
    if base_url is not None:
        where["base_url"] = base_url
    return gemini.model_copy(update={"model": model, "generation": verify.generation, "replay_file": verify.replay_file,
                                     "max_cost_usd": verify.max_cost_usd, "retry_truncated": False, **where})


def purpose_params(gemini: GeminiParams, verify: VerifyParams, purpose: str) -> GeminiParams:
    """The model, backend and server of one check: verify.<purpose>_model/_backend/_base_url, else verify.model (the
    blind check and the judge) and gemini's.

    verify.model names a model of Vertex's catalogue (a cheap Gemini); an OpenAI-compatible server serves the models
    it was started with, so a check asked there without a model of its own asks gemini.model."""
    backend = getattr(verify, f"{purpose}_backend") or gemini.backend
    own = {BLIND: verify.blind_model, JUDGE: verify.judge_model, GROUND: verify.ground_model}[purpose]
    shared = verify.model if purpose in (BLIND, JUDGE) and backend != "openai" else None
    return check_params(gemini, verify, own or shared or gemini.model, getattr(verify, f"{purpose}_backend"),
                        getattr(verify, f"{purpose}_base_url"))


def items_text(items: Sequence[dict[str, Any]]) -> str:
    """One JSON object per line: unambiguous whatever the questions hold (quotes, newlines, `{items}`)."""
    return "\n".join(json.dumps(item, ensure_ascii=False) for item in items)


def prompt_with(prompt: str, items: Sequence[dict[str, Any]]) -> str:
    return prompt.replace(ITEMS, items_text(items))


def check_request(clip: ClipRecord, params: GeminiParams, purpose: str, prompt: str, items: Sequence[dict[str, Any]],
                  schema: dict[str, Any], video: bool) -> GeminiRequest:
    return GeminiRequest(clip=clip, model=params.model, prompt_text=prompt_with(prompt, items),
                         generation=generation_config(params), backend=params.backend, response_schema=schema,
                         video_fps=check_video_fps(params.video_fps) if video else None, video=video, purpose=purpose,
                         video_input=video_input(params) if video else None)


def blind_request(clip: ClipRecord, pairs: Sequence[Pair], params: GeminiParams, verify: VerifyParams) -> GeminiRequest:
    """The questions only: no video part, and never the answers."""
    items = [{"id": p.id, "question": p.question} for p in pairs]
    return check_request(clip, params, BLIND, verify.blind_prompt, items, BLIND_SCHEMA, video=False)


def judge_request(clip: ClipRecord, pairs: Sequence[tuple[Pair, str]], params: GeminiParams,
                  verify: VerifyParams) -> GeminiRequest:
    """Question, video answer and blind answer of each pair the exact match did not decide; text only."""
    items = [{"id": p.id, "question": p.question, "answer_a": p.answer, "answer_b": blind} for p, blind in pairs]
    return check_request(clip, params, JUDGE, verify.judge_prompt, items, JUDGE_SCHEMA, video=False)


def ground_request(clip: ClipRecord, pairs: Sequence[Pair], params: GeminiParams, verify: VerifyParams) -> GeminiRequest:
    """The clip (as generate sent it: same window, same fps) and every pair."""
    items = [{"id": p.id, "question": p.question, "answer": p.answer} for p in pairs]
    return check_request(clip, params, GROUND, verify.ground_prompt, items, GROUND_SCHEMA, video=True)


_DOCUMENTS: dict[str, type[BaseModel]] = {BLIND: _BlindAnswer, JUDGE: _JudgeAnswer, GROUND: _GroundAnswer}


class UnreadableAnswer(ValueError):
    """A check's answer is not the JSON its schema asks for: every pair of the request stays unverified."""


def read_items(purpose: str, text: str | None) -> dict[int, Any]:
    """A check's structured answer, item by pair id (the first item of an id counts)."""
    body = strip_code_fence(text or "").strip()
    try:
        document = _DOCUMENTS[purpose].model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise UnreadableAnswer(f"{where}: {first['msg']}") from None
    items: dict[int, Any] = {}
    for item in getattr(document, "answers", None) or getattr(document, "verdicts", None) or []:
        items.setdefault(item.id, item)
    return items


# --- the free shortcut -----------------------------------------------------------------------------

_ARTICLES = {"a", "an", "the"}
_NOT_WORD = re.compile(r"[\W_]+")


def normalised_answer(text: str) -> str:
    """An answer's words, for the exact-match shortcut: case, accents, punctuation and articles ignored."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(w for w in _NOT_WORD.sub(" ", folded).split() if w not in _ARTICLES)


def same_answer(video_answer: str, blind_answer: str) -> bool:
    """The blind answer says what the video answer says, word for word (the judge decides the rest)."""
    return bool(normalised_answer(blind_answer)) and normalised_answer(video_answer) == normalised_answer(blind_answer)


def blind_field(items: dict[int, BlindItem], pair_id: int) -> tuple[str | None, bool] | None:
    """(blind answer, cannot tell) of one pair, or None when the answer has no item for it."""
    item = items.get(pair_id)
    if item is None:
        return None
    answer = item.answer or None
    return answer, item.cannot_tell or answer is None

