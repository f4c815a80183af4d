r"""Export the dataset as a review sheet (CSV) for annotators writing gold answers.

    python -m evud.dataset.review_sheet --dataset data/ego4d_vqa_gemini.json --manifest data/clips.jsonl \
        --out data/gold/review.csv          # or: evud-review-sheet ...

One row per QA pair: clip id, the four Ego4D ids, where the clip is (its gs:// copy if uploaded, else the
dataset's `video` path), the window in the source video, category, question, answer, verify's verdict, and an empty
`gold_answer` column. Fill in `gold_answer` where Gemini was wrong (or everywhere), save the file under
data/gold/, set `post.gold_answers` to it and run `dvc repro`: those answers are replaced and their records
marked `human_annotated`. Rows left empty are skipped.

Answers already in the gold file (`--gold`, by default params.yaml's `post.gold_answers`) are filled into
`gold_answer` of the new sheet, so a sheet exported after a round of annotation carries it forward and
can replace the old file.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from evud.core.domain import same_question
from evud.core.errors import run_stage
from evud.core.jsonl import read_jsonl
from evud.core.records import ClipRecord, LlavaRecord
from evud.core.store import atomic_file
from evud.dataset.gold import GoldIndex, load_gold_answers

REVIEW_COLUMNS = ("id", "ego4d_video_uid", "ego4d_clip_uid", "ego4d_annotation_uid", "ego4d_language_query_index",
                  "video", "window_start", "window_end", "category", "question", "answer", "verdict",
                  "human_annotated", "gold_answer")


def current_gold(index: GoldIndex, key: str, category: str, question: str) -> str:
    """The gold answer already given for this pair (and this very question), or ''."""
    gold = index.answers.get((key, category))
    if gold is None or (gold.question and not same_question(gold.question, question)):
        return ""
    return gold.gold_answer


def review_rows(records: list[LlavaRecord], clips: dict[str, ClipRecord],
                gold: GoldIndex | None = None) -> Iterator[dict[str, Any]]:
    """One row per QA pair, in dataset order then category order as the tuples store them."""
    gold = gold or GoldIndex()
    for record in records:
        clip = clips.get(record.id)
        for pair in record.category_question_answer_tuples:
            yield {
                "id": record.id,
                "ego4d_video_uid": record.ego4d_video_uid,
                "ego4d_clip_uid": record.ego4d_clip_uid,
                "ego4d_annotation_uid": record.ego4d_annotation_uid,
                "ego4d_language_query_index": record.ego4d_language_query_index,
                "video": (clip and clip.clip_uri) or record.video,
                "window_start": "" if clip is None or clip.window_start is None else f"{clip.window_start:g}",
                "window_end": "" if clip is None or clip.window_end is None else f"{clip.window_end:g}",
                "category": pair.category,
                "question": pair.question,
                "answer": pair.short_answer,
                "verdict": pair.verdict.value if pair.verdict is not None else "",  # verify's: sort by it to review
                "human_annotated": "true" if record.human_annotated else "false",
                "gold_answer": current_gold(gold, record.id, pair.category, pair.question),
            }


def write_review_sheet(dataset: Path, manifest: Path | None, out: Path, gold_answers: str | None = None) -> int:
    """Write the sheet; returns how many rows (QA pairs) it holds."""
    with open(dataset, encoding="utf-8") as f:
        records = [LlavaRecord.model_validate(r) for r in json.load(f)]
    clips = {}
    if manifest is not None:
        clips = {c.key: c for c in (ClipRecord.model_validate(r) for r in read_jsonl(manifest))}
    # Read the gold answers before writing: the sheet written may be the very gold file (a second round).
    gold = load_gold_answers(gold_answers)
    count = 0
    with atomic_file(out, newline="") as f:  # whole or not at all
        writer = csv.DictWriter(f, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in review_rows(records, clips, gold):
            writer.writerow(row)
            count += 1
    return count


def configured_gold_answers(params_file: Path) -> str | None:
    if not params_file.exists():
        return None
    with open(params_file, encoding="utf-8") as f:
        return ((yaml.safe_load(f) or {}).get("post") or {}).get("gold_answers")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/ego4d_vqa_gemini.json"))
    parser.add_argument("--manifest", type=Path, default=Path("data/clips.jsonl"),
                        help="prepare's manifest, for each clip's window and gs:// URI")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write, e.g. data/gold/review.csv")
    parser.add_argument("--gold", default=None,
                        help="gold answers to carry forward into gold_answer (default: params.yaml's post.gold_answers)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    gold = args.gold or configured_gold_answers(args.params)

    def export() -> None:
        rows = write_review_sheet(args.dataset, args.manifest if args.manifest.exists() else None, args.out, gold)
        print(f"review sheet: {rows} QA pairs -> {args.out}; fill in gold_answer, then set "
              f"post.gold_answers={args.out} and run dvc repro")

    run_stage("review_sheet", export, on_interrupt="the sheet was not written")


if __name__ == "__main__":
    main()
