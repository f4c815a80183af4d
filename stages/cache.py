"""The Gemini response cache: an append-only JSON Lines log keyed by request key.

It lives in a persisted DVC out (DVC does not delete it before generate runs), so it survives re-runs
and experiments, and a team shares it through the DVC remote. Each answer is fsync'd the moment it
arrives. Answers of every status but `failed` are final; `failed` keys are asked again next run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jsonl import DurableAppender, read_jsonl, write_jsonl
from .records import ResponseStatus

CACHE_FILE = "responses.jsonl"


class ResponseCache:
    def __init__(self, directory: Path):
        self.path = directory / CACHE_FILE
        self._entries: dict[str, dict[str, Any]] = {}
        for entry in read_jsonl(self.path):
            self._remember(entry)
        self._appender: DurableAppender | None = None

    def _remember(self, entry: dict[str, Any]) -> None:
        known = self._entries.get(entry["request_key"])
        # A failure never shadows an answer already paid for.
        if known is None or known["status"] == ResponseStatus.failed.value or entry["status"] != ResponseStatus.failed.value:
            self._entries[entry["request_key"]] = entry

    def get(self, key: str) -> dict[str, Any] | None:
        """The final answer for this key, or None if it must be (re)requested."""
        entry = self._entries.get(key)
        return entry if entry is not None and entry["status"] != ResponseStatus.failed.value else None

    def put(self, entry: dict[str, Any]) -> None:
        self.put_many([entry])

    def put_many(self, entries: list[dict[str, Any]]) -> None:
        """Store answers that arrived together; they are on disk (fsync'd) when this returns."""
        if self._appender is None:
            self._appender = DurableAppender(self.path)
        self._appender.append_many(entries)
        for entry in entries:
            self._remember(entry)

    def entry(self, key: str) -> dict[str, Any] | None:
        """The latest entry for this key, failed ones included."""
        return self._entries.get(key)

    def compact(self) -> None:
        """Rewrite the log with one entry per key, sorted, so the cache out is deterministic."""
        self.close()
        write_jsonl(self.path, [self._entries[k] for k in sorted(self._entries)])

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None

    def __len__(self) -> int:
        return len(self._entries)
