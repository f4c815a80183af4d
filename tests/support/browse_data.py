"""Small hand-made pipeline files (manifest, dataset, rejects, responses) for building browser sites in tests."""

from __future__ import annotations

import json
from pathlib import Path

from evud.browse.build import SiteInputs
from evud.core.domain import EVUD_CATEGORIES
from evud.core.jsonl import write_jsonl
from evud.core.records import (ClipRecord, ClipStatus, ClipVerdicts, GeminiResult, LlavaRecord, PairCheck, QAPair,
                               QueryIds, Reject, Turn, Verdict)


def query_ids(n: int, video: str = "v1", clip: str = "c1") -> QueryIds:
    return QueryIds(video_uid=video, clip_uid=clip, annotation_uid=f"a{n}", language_query_index=n)


def clip_record(ids: QueryIds, status: ClipStatus = ClipStatus.ok, **fields: object) -> ClipRecord:
    defaults = {"query": f"where is thing {ids.language_query_index}?", "window_start": 1.0, "window_end": 3.0,
                "duration": 2.0}
    if status is ClipStatus.ok:
        defaults["clip_path"] = f"{ids.video_uid}/{ids.clip_uid}/{ids.annotation_uid}/{ids.language_query_index}.mp4"
    return ClipRecord(**ids.model_dump(), status=status, **{**defaults, **fields})


def llava_record(ids: QueryIds, answers: dict[str, tuple[str, str]] | None = None,
                 human_annotated: bool = False) -> LlavaRecord:
    """A record with one pair per category (question, answer), or the given ones."""
    answers = answers or {c: (f"{c} question {ids.language_query_index}?", f"{c} answer") for c in EVUD_CATEGORIES}
    pairs = [QAPair(category=c, question=q, **{"short answer": a}) for c, (q, a) in answers.items()]
    turns = []
    for i, pair in enumerate(pairs):
        turns += [Turn(**{"from": "human", "value": ("<video>\n" if i == 0 else "") + pair.question}),
                  Turn(**{"from": "gpt", "value": pair.short_answer})]
    return LlavaRecord(**{"id": ids.key, "video": f"root/{ids.key}.mp4", "ego4d_video_uid": ids.video_uid,
                          "ego4d_clip_uid": ids.clip_uid, "ego4d_annotation_uid": ids.annotation_uid,
                          "ego4d_language_query_index": ids.language_query_index, "duration_(s)": 2.0,
                          "human_annotated": human_annotated, "conversations": turns,
                          "category_question_answer_tuples": pairs})


def gemini_text(ids: QueryIds, text: str) -> GeminiResult:
    return GeminiResult(**ids.model_dump(), request_key="k", clip_sha256="0" * 64, model="m", backend="replay",
                        status="ok", text=text)


def write_inputs(root: Path, manifest: list[ClipRecord], dataset: list[LlavaRecord], rejects: list[Reject],
                 responses: list[GeminiResult]) -> SiteInputs:
    """The four pipeline files under root, and an (empty) clips directory."""
    inputs = SiteInputs(root / "clips.jsonl", root / "dataset.json", root / "rejects.jsonl", root / "responses.jsonl",
                        root / "clips")
    inputs.clips_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(inputs.manifest, manifest)
    inputs.dataset.write_text(json.dumps([r.to_json_dict() for r in dataset]), encoding="utf-8")
    write_jsonl(inputs.rejects, rejects)
    write_jsonl(inputs.responses, responses)
    return inputs


def blind_answerable_verdicts(ids: QueryIds, record: LlavaRecord, answer_key: str,
                              blind_answer: str = "a stale blind answer") -> ClipVerdicts:
    """verify's line for the clip: every pair of the record found blind-answerable, for the answer `answer_key`."""
    pairs = [PairCheck(id=i + 1, category=p.category, question=p.question, answer=p.short_answer,
                       blind_answer=blind_answer, blind="exact_match", verdict=Verdict.blind_answerable,
                       reason=f"blind_exact_match: answered {blind_answer!r} without the video")
             for i, p in enumerate(record.category_question_answer_tuples)]
    return ClipVerdicts(**ids.model_dump(), answer_key=answer_key, pairs=pairs)
