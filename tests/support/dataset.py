"""Inputs of postprocess written by hand: clip records, Gemini results, the files postprocess reads."""

from __future__ import annotations

import json
from pathlib import Path

from evud.core.jsonl import write_jsonl
from evud.core.params import PromptParams
from evud.core.records import ClipRecord, GeminiResult
from evud.dataset.answers import parse_qa_blocks

TEXT = PromptParams(name="evud", format="text", text="prompt")
JSON = PromptParams(name="evud_json", format="json", text="prompt", response_schema={"type": "array"})


def clip(index: int, video: str = "v1", duration: float = 5.0) -> ClipRecord:
    return ClipRecord(video_uid=video, clip_uid="c1", annotation_uid="a1", language_query_index=index, status="ok",
                      clip_path=f"{video}/c1/a1/{index}.mp4", duration=duration, window_start=10.0,
                      window_end=10.0 + duration, sha256="0" * 64)


def answer(index: int, text: str | None, status: str = "ok", video: str = "v1", **extra) -> GeminiResult:
    return GeminiResult(video_uid=video, clip_uid="c1", annotation_uid="a1", language_query_index=index,
                        request_key=f"k{index}", clip_sha256="0" * 64, model="m", backend="replay", status=status,
                        text=text, **extra)


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {reason: n for reason, n in counts.items() if n}


def json_text(text: str) -> str:
    """The same answer as the JSON the evud_json schema asks for."""
    return json.dumps([{"category": c, "question": q, "answer": a} for c, q, a in parse_qa_blocks(text).pairs])


def write_inputs(root: Path, texts: list[str], order: list[int] | None = None) -> tuple[Path, Path]:
    manifest, responses = root / "clips.jsonl", root / "responses.jsonl"
    write_jsonl(manifest, [clip(i, video=f"v{i % 3}", duration=1.0 + i) for i in range(len(texts))])
    results = [answer(i, t, video=f"v{i % 3}", status="truncated" if i % 7 == 3 else "ok") for i, t in enumerate(texts)]
    write_jsonl(responses, [results[i] for i in (order or range(len(results)))])
    return manifest, responses
