"""The `replay` backend: answers from a bundled file of example generateContent responses, offline and free.

Each response names its clip by the four Ego4D ids and, for verify's checks, what it answers (`purpose`: blind,
judge or ground; absent: generate's QA answer), so one file can hold the answers of every request about a clip."""

from __future__ import annotations

import json
from pathlib import Path

from google.genai import types

from evud.core.errors import UserError
from evud.core.records import QueryIds
from evud.gemini.backend import BackendError, BatchOutcome
from evud.gemini.request import GeminiRequest


class ReplayBackend:
    """Answers from a file of example generateContent responses keyed by the clip's Ego4D ids and purpose."""

    name = "replay"
    billed = False
    supports_batch = False

    def __init__(self, path: Path):
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        # Validated here, in one thread: pydantic finishes building the SDK's models on first use,
        # and doing that from several worker threads at once is not safe.
        self._path = path
        self._responses = {
            (QueryIds.model_validate(r).key, r.get("purpose", "qa")): types.GenerateContentResponse.model_validate(r["response"])
            for r in document["responses"]
        }

    def retries_made(self) -> int:
        return 0

    def check_ready(self) -> None:
        pass  # a file on disk: nothing to check

    def ask_batch(self, *args: object, **kwargs: object) -> BatchOutcome:
        raise UserError("gemini.mode=batch needs gemini.backend=vertex")

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        response = self._responses.get((request.clip.key, request.purpose))
        if response is None:
            what = "" if request.purpose == "qa" else f" {request.purpose} check"
            raise BackendError(f"no_replay_response: {self._path} has no{what} answer for this clip")
        return response.model_copy(deep=True)
