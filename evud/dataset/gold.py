"""Human gold answers: read the annotations file (CSV or JSON Lines) and merge it into the QA pairs.

The loop is export -> annotate -> `dvc repro`: `python -m evud.dataset.review_sheet` writes a CSV with an empty
`gold_answer` column; annotators fill it in; the filled sheet, saved under data/gold/ and named by
`post.gold_answers`, replaces those answers and marks their records `human_annotated`. Every row that
cannot be applied is reported with its reason (never silently ignored).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evud.core.domain import count_by_reason, same_question
from evud.core.errors import UserError
from evud.core.records import QAPair, QueryIds, Reject, RejectScope
from evud.dataset.answers import normalise_category

# The directory dvc.yaml declares as postprocess's dep: a gold file elsewhere would change the dataset
# without DVC noticing, so it is refused.
GOLD_DIR = Path("data/gold")
GOLD_COLUMNS = ("ego4d_video_uid", "ego4d_clip_uid", "ego4d_annotation_uid", "ego4d_language_query_index",
                "category", "gold_answer")


class GoldAnswer(BaseModel):
    """One human (gold) answer of the annotations file, keyed by the clip's Ego4D ids and the category.

    The review sheet (evud.dataset.review_sheet) has these columns (and more), so a filled-in sheet is a gold file.
    `question`, when given, must still be the dataset's question: a gold answer to an older question
    (another model or prompt) is reported, not applied.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    ego4d_video_uid: str = Field(min_length=1)
    ego4d_clip_uid: str = Field(min_length=1)
    ego4d_annotation_uid: str = Field(min_length=1)
    ego4d_language_query_index: int
    category: str = Field(min_length=1)
    question: str | None = None
    gold_answer: str = Field(min_length=1)

    @property
    def key(self) -> str:
        return QueryIds(video_uid=self.ego4d_video_uid, clip_uid=self.ego4d_clip_uid,
                        annotation_uid=self.ego4d_annotation_uid,
                        language_query_index=self.ego4d_language_query_index).key


class GoldAnswersError(UserError):
    """The gold answers file cannot be used at all (wrong place, wrong columns, unreadable)."""


@dataclass
class GoldIndex:
    """Usable gold answers by (clip key, category), and what happened to every row."""

    answers: dict[tuple[str, str], GoldAnswer] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    rows: int = 0
    rows_without_gold: int = 0  # exported but not annotated yet: skipped, not an error
    used: set[tuple[str, str]] = field(default_factory=set)


def check_gold_path(path: Path, gold_dir: Path = GOLD_DIR) -> Path:
    """The gold file must live under the directory DVC tracks for postprocess."""
    if not path.resolve().is_relative_to(gold_dir.resolve()):
        raise GoldAnswersError(f"post.gold_answers={str(path)!r} is outside {gold_dir}/, which dvc.yaml tracks as a "
                               f"dependency of postprocess; move the file into {gold_dir}/ so a change re-runs the stage")
    if not path.is_file():
        raise GoldAnswersError(f"post.gold_answers={str(path)!r} does not exist; export a sheet with "
                               "`python -m evud.dataset.review_sheet` and fill in its gold_answer column")
    return path


def read_gold_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV (header row) or JSON Lines gold file."""
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append((number, json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise GoldAnswersError(f"{path}:{number} is not a JSON object ({err.msg})") from None
        return rows
    # utf-8-sig: spreadsheet programs often save CSV with a byte-order mark.
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in GOLD_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GoldAnswersError(f"{path} lacks the column(s) {', '.join(missing)}; start from a sheet exported by "
                                   "`python -m evud.dataset.review_sheet`")
        return [(number, row) for number, row in enumerate(reader, 2)]


def index_gold_answers(rows: list[tuple[int, dict[str, Any]]], source: str) -> GoldIndex:
    """Validate rows, normalise their categories, and refuse conflicting answers for one pair."""
    index = GoldIndex(rows=len(rows))
    by_pair: dict[tuple[str, str], list[GoldAnswer]] = {}
    for number, row in rows:
        if not str(row.get("gold_answer") or "").strip():
            index.rows_without_gold += 1
            continue
        try:
            gold = GoldAnswer.model_validate(row)
        except ValidationError as err:
            first = err.errors()[0]
            key = str(row.get("id") or row.get("ego4d_video_uid") or f"{source}:{number}")
            index.rejects.append(Reject(key=key, stage="postprocess", scope=RejectScope.gold, reason="gold_invalid_row",
                                        detail=f"{source}:{number}: {'.'.join(map(str, first['loc']))}: {first['msg']}"))
            continue
        category = normalise_category(gold.category)
        if category is None:
            index.rejects.append(Reject(key=gold.key, stage="postprocess", scope=RejectScope.gold,
                                        reason="gold_unknown_category", category=gold.category, question=gold.question,
                                        detail=f"{source}:{number}: {gold.category!r} is not an EVUD category"))
            continue
        by_pair.setdefault((gold.key, category), []).append(gold.model_copy(update={"category": category}))
    for pair_key, golds in by_pair.items():
        if len({g.gold_answer for g in golds}) > 1:
            index.rejects.append(Reject(key=pair_key[0], stage="postprocess", scope=RejectScope.gold,
                                        reason="gold_conflict", category=pair_key[1],
                                        detail=f"{len(golds)} different gold answers in {source}; none applied"))
            continue
        index.answers[pair_key] = golds[0]
    return index


def load_gold_answers(path: str | None) -> GoldIndex:
    """The gold index of `post.gold_answers`, or an empty one when it is null."""
    if not path:
        return GoldIndex()
    gold_path = check_gold_path(Path(path))
    return index_gold_answers(read_gold_rows(gold_path), str(gold_path))


def applicable_gold(index: GoldIndex, clip_key: str, pair: QAPair) -> GoldAnswer | None:
    """The gold answer that will replace this pair's answer (one for its clip and category, written for its
    question), or None."""
    gold = index.answers.get((clip_key, pair.category))
    if gold is None or (gold.question and not same_question(gold.question, pair.question)):
        return None
    return gold


def apply_gold(clip_key: str, pairs: list[QAPair], index: GoldIndex) -> tuple[list[QAPair], int]:
    """Pairs with their gold answers swapped in, and how many were; question mismatches are reported."""
    merged, applied = [], 0
    for pair in pairs:
        gold = index.answers.get((clip_key, pair.category))
        if gold is None:
            merged.append(pair)
            continue
        index.used.add((clip_key, pair.category))
        if gold.question and not same_question(gold.question, pair.question):
            index.rejects.append(Reject(key=clip_key, stage="postprocess", scope=RejectScope.gold,
                                        reason="gold_question_mismatch", category=pair.category, question=gold.question,
                                        detail=f"the gold answer was written for {gold.question!r} but the dataset now "
                                               f"asks {pair.question!r}; re-export the review sheet"))
            merged.append(pair)
            continue
        merged.append(pair.model_copy(update={"short_answer": gold.gold_answer}))
        applied += 1
    return merged, applied


def report_unmatched(index: GoldIndex, known_clips: set[str], dataset_clips: set[str]) -> None:
    """Gold answers that matched no pair of the dataset: a typo'd id, a rejected clip, a dropped pair."""
    for (clip_key, category), gold in sorted(index.answers.items()):
        if (clip_key, category) in index.used:
            continue
        if clip_key not in known_clips:
            reason, detail = "gold_unknown_clip", f"no clip {clip_key} in the manifest (check the four ego4d ids)"
        elif clip_key not in dataset_clips:
            reason, detail = "gold_unmatched_pair", f"clip {clip_key} is not in the dataset (see its clip reject)"
        else:
            reason, detail = "gold_unmatched_pair", f"clip {clip_key} has no {category!r} pair in the dataset"
        index.rejects.append(Reject(key=clip_key, stage="postprocess", scope=RejectScope.gold, reason=reason,
                                    category=category, question=gold.question, detail=detail))


def gold_metrics(index: GoldIndex, applied: int) -> dict[str, Any]:
    return {
        "rows": index.rows,
        "rows_without_gold": index.rows_without_gold,
        "applied": applied,
        "not_applied_by_reason": count_by_reason(index.rejects, RejectScope.gold),
    }
