"""What an answer becomes: ok, blocked, truncated, empty, or a glitch asked again; usage as Vertex counted it."""

from __future__ import annotations

import pytest
from google.genai import types

from evud.core.records import ResponseStatus
from evud.gemini.backend import classify_response, failed_entry, response_entry

USAGE = {"promptTokenCount": 2000, "candidatesTokenCount": 150, "thoughtsTokenCount": 300, "totalTokenCount": 2450,
         "promptTokensDetails": [{"modality": "VIDEO", "tokenCount": 1500}, {"modality": "AUDIO", "tokenCount": 320}]}


def response(parts: list[dict] | None, finish: str | None = "STOP", **extra) -> types.GenerateContentResponse:
    body: dict = {"usageMetadata": USAGE, **extra}
    if parts is not None:
        body["candidates"] = [{"content": {"role": "model", "parts": parts}, "finishReason": finish}]
    return types.GenerateContentResponse.model_validate(body)


@pytest.mark.parametrize(("answer", "status", "reason"), [
    (response([{"text": "Category: x"}]), "ok", None),
    (response([{"text": "Category: x"}], "MAX_TOKENS"), "truncated", None),
    (response([{"text": "thinking...", "thought": True}], "MAX_TOKENS"), "truncated", None),  # thinking ate it all
    (response([], "STOP"), "empty", None),
    (response([{"text": "partial"}], "SAFETY"), "blocked", "SAFETY"),
    (response([{"text": "quote"}], "RECITATION"), "blocked", "RECITATION"),
    (response(None, promptFeedback={"blockReason": "PROHIBITED_CONTENT"}), "blocked", "PROHIBITED_CONTENT"),
    (response(None), "failed", None),  # no candidate and no reason: a glitch, not a refusal
])
def test_every_answer_is_classified_with_its_reason(answer, status, reason):
    classified = classify_response(answer)
    assert classified.status.value == status and classified.block_reason == reason


def test_thought_parts_are_never_taken_for_the_answer_and_usage_counts_audio_and_thinking():
    classified = classify_response(response([{"text": "Let me think.", "thought": True}, {"text": "Category: a"}]))
    assert classified.text == "Category: a"
    usage = classified.usage
    assert (usage.prompt_tokens, usage.prompt_audio_tokens, usage.output_tokens, usage.thoughts_tokens,
            usage.total_tokens) == (2000, 320, 150, 300, 2450)


def test_a_glitch_becomes_a_retryable_failure_that_is_never_stored():
    entry = response_entry("k" * 64, "m", "vertex", response(None))
    assert entry.status is ResponseStatus.failed and entry.retryable and entry.error.startswith("no_candidates")
    assert not entry.is_final
    kept = response_entry("k" * 64, "m", "vertex", response([{"text": "Category: a"}]))
    assert kept.is_final and kept.response["usageMetadata"]["thoughtsTokenCount"] == 300
    assert not failed_entry("k" * 64, "m", "vertex", "api_error_400: ...", retryable=False).retryable
