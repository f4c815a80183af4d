"""LLaVA records in the layout of the published ego4d_vqa_gemini.json: shuffled multi-turn conversations with
`<video>\n` on the first human turn, validated the way training code reads them, written byte-identically."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evud.core.params import PostParams
from evud.core.records import ClipRecord, LlavaRecord, QAPair, Turn
from evud.core.store import atomic_file
from evud.dataset.answers import capitalise_first


class DatasetValidationError(ValueError):
    """A record about to be written does not load the way training code reads it (a bug here, not in the data)."""


def build_conversation(pairs: list[QAPair], seed: int, clip_key: str) -> list[Turn]:
    """Human/gpt turns in an order shuffled per clip (seed + clip key), `<video>\\n` on the first question."""
    order = list(range(len(pairs)))
    random.Random(f"{seed}:{clip_key}").shuffle(order)
    turns: list[Turn] = []
    for position, index in enumerate(order):
        question = capitalise_first(pairs[index].question)
        if position == 0:
            question = f"<video>\n{question}"
        turns.append(Turn(**{"from": "human", "value": question}))
        turns.append(Turn(**{"from": "gpt", "value": capitalise_first(pairs[index].short_answer)}))
    return turns


def build_record(clip: ClipRecord, pairs: list[QAPair], post: PostParams, human_annotated: bool = False) -> LlavaRecord:
    video = f"{post.video_root.rstrip('/')}/{clip.clip_path}" if post.video_root else clip.clip_path
    return LlavaRecord(**{
        "id": clip.key, "video": video, "ego4d_video_uid": clip.video_uid, "ego4d_clip_uid": clip.clip_uid,
        "ego4d_annotation_uid": clip.annotation_uid, "ego4d_language_query_index": clip.language_query_index,
        "duration_(s)": clip.duration, "human_annotated": human_annotated,
        "conversations": build_conversation(pairs, post.seed, clip.key),
        "category_question_answer_tuples": pairs,
    })


def record_sort_key(record: LlavaRecord) -> tuple[str, str, str, int]:
    """Ids in order, the query index as a number (so query 10 follows query 9)."""
    return (record.ego4d_video_uid, record.ego4d_clip_uid, record.ego4d_annotation_uid,
            record.ego4d_language_query_index)


def validated_dataset(records: list[LlavaRecord]) -> list[dict[str, Any]]:
    """The JSON list to write, each record re-validated from its own JSON form; ids must be unique."""
    dataset = [r.to_json_dict() for r in sorted(records, key=record_sort_key)]
    seen: set[str] = set()
    for item in dataset:
        try:
            LlavaRecord.model_validate(json.loads(json.dumps(item)))
        except ValidationError as err:
            raise DatasetValidationError(f"record {item.get('id')!r} would not load: {err}") from None
        if item["id"] in seen:
            raise DatasetValidationError(f"record id {item['id']!r} appears twice")
        seen.add(item["id"])
    return dataset


def write_dataset(path: Path, records: list[LlavaRecord]) -> None:
    """The LLaVA JSON list, fields in the published order, records sorted by ids: byte-identical reruns."""
    dataset = validated_dataset(records)
    with atomic_file(path) as f:
        json.dump(dataset, f, indent=2, ensure_ascii=False)
        f.write("\n")
