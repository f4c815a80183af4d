"""The rows of metadata.jsonl: one per record, the same columns with the same types in every row, and their
features in the YAML form `datasets` reads from a dataset card.

No column is ever null: `datasets` infers the type of a column from its values, and a column that is null in every
row of a file becomes type `null`, which fails to cast against the same column of another file (why the published
EVUD files do not load in the Hub's viewer). Missing text is "".
"""

from __future__ import annotations

import json
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from evud.hub.inputs import ExportItem


class _Columns(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class QAPairColumn(_Columns):
    category: str = Field(description="one of the seven EVUD categories")
    question: str
    answer: str
    verdict: str = Field(description="verify's verdict of the pair (grounded, blind_answerable, unsupported, "
                                     "unverified); \"\" when verify did not run")


class TurnColumn(_Columns):
    from_: str = Field(alias="from", description="human or gpt")
    value: str


class MetadataRow(_Columns):
    """One row of metadata.jsonl after its video column (`file_name` or `video`, see evud.hub.layout)."""

    id: str = Field(description="the window's key: video_id-clip_id-annotation_id-window_index (the LLaVA record's id)")
    source: str = Field(description="where the window came from (data.source): ego4d_nlq, ego4d_moments, "
                                    "epic_kitchens or windows")
    video_id: str = Field(description="the source video (Ego4D video_uid)")
    clip_id: str = Field(description="Ego4D clip_uid, or the source's grouping of windows")
    annotation_id: str = Field(description="Ego4D annotation_uid, or the source's annotation id")
    window_index: int = Field(description="the window's index in its annotation (Ego4D language_query_index)")
    window_start: float = Field(description="window start, seconds in the source video")
    window_end: float = Field(description="window end, seconds in the source video")
    duration: float = Field(description="window_end - window_start, seconds (EVUD's duration_(s))")
    clip_start: float = Field(description="where the clip file starts, seconds in the source video: window_start "
                                          "for an exact cut; a copy cut (clip.mode=copy) starts at the keyframe before")
    clip_end: float = Field(description="where the clip file ends, seconds in the source video")
    text: str = Field(description="the window's own text (NLQ query, narration or moment label); \"\" when none")
    template: str = Field(description="the Ego4D NLQ template the annotator chose; \"\" when none")
    qa_pairs: list[QAPairColumn] = Field(description="the clip's question-answer pairs, in category order")
    conversations: list[TurnColumn] = Field(description="the LLaVA conversation: human/gpt turns, `<video>` opening "
                                                        "the first")
    human_annotated: bool = Field(description="at least one answer is a human gold answer")
    clip_sha256: str = Field(description="sha256 of the clip file")


def metadata_row(item: ExportItem, source: str) -> MetadataRow:
    """The row of one record; a missing text or verdict is "", never null."""
    record, clip = item.record, item.clip
    return MetadataRow(
        id=record.id, source=source, video_id=clip.video_uid, clip_id=clip.clip_uid,
        annotation_id=clip.annotation_uid, window_index=clip.language_query_index,
        window_start=clip.window_start, window_end=clip.window_end, duration=clip.duration,
        clip_start=clip.window_start if clip.file_start is None else clip.file_start,
        clip_end=clip.window_end if clip.file_end is None else clip.file_end,
        text=clip.query or "", template=clip.template or "",
        qa_pairs=[QAPairColumn(category=pair.category, question=pair.question, answer=pair.short_answer,
                               verdict=pair.verdict.value if pair.verdict else "")
                  for pair in record.category_question_answer_tuples],
        conversations=[TurnColumn(from_=turn.from_, value=turn.value) for turn in record.conversations],
        human_annotated=record.human_annotated, clip_sha256=clip.sha256)


def metadata_line(video_column: str, video: str, row: MetadataRow) -> str:
    """One line of metadata.jsonl: the video column first, then the row's columns in their declared order."""
    data = {video_column: video, **row.model_dump(mode="json", by_alias=True)}
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


# --- Features: the card's `dataset_info.features`, derived from the row models so the two cannot drift apart -------

_DTYPES = {str: "string", int: "int64", float: "float64", bool: "bool"}


def features_yaml(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The `datasets` YAML features of a model's fields, by alias and in order: scalars and lists of models."""
    return [{"name": field.alias or name, **_feature(field.annotation, name)}
            for name, field in model.model_fields.items()]


def _feature(annotation: Any, name: str) -> dict[str, Any]:
    if annotation in _DTYPES:
        return {"dtype": _DTYPES[annotation]}
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return {"list": features_yaml(item)}
    raise TypeError(f"column {name}: no datasets feature for {annotation!r}")


def column_descriptions(model: type[BaseModel] = MetadataRow) -> dict[str, str]:
    """Each column's meaning, for the card's table of columns."""
    return {field.alias or name: field.description or "" for name, field in model.model_fields.items()}
