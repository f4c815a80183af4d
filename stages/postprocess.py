r"""Stage `postprocess`: parse Gemini's answers into LLaVA instruction-tuning records (EVUD layout).

    python -m stages.postprocess --manifest data/clips.jsonl --responses data/responses.jsonl \
        --out data/ego4d_vqa_gemini.json --rejects data/rejects.jsonl --metrics metrics/postprocess.json \
        --plots-dir plots

Nothing here calls Gemini: changing the parser, the policy (`post.*`) or the gold answers re-parses the
stored answers for free. Output depends only on the inputs' content, never on the order answers arrived in.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .answers import EVUD_CATEGORIES, capitalise_first, parse_answer
from .errors import run_stage
from .gold import GoldIndex, apply_gold, gold_metrics, load_gold_answers, report_unmatched
from .jsonl import read_jsonl, write_json, write_jsonl
from .params import PostParams, PromptParams, load_section
from .progress import summarise_failures
from .records import ClipRecord, GeminiResult, LlavaRecord, QAPair, Reject, RejectScope, ResponseStatus, Turn
from .report import dataset_metrics, plot_data

_CATEGORY_ORDER = {name: i for i, name in enumerate(EVUD_CATEGORIES)}
_STAGE = "postprocess"
_MEDIA_TOKENS = ("<video>", "<image>")


class DatasetValidationError(ValueError):
    """A record about to be written does not load the way training code reads it (a bug here, not in the data)."""


@dataclass
class ClipOutcome:
    """What one clip's answer became: the pairs kept (empty if the clip is rejected) and every reject."""

    pairs: list[QAPair] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    pairs_parsed: int = 0
    parsed_as: str | None = None  # text / json, when the answer reached a parser


def question_key(question: str) -> str:
    """Questions that differ only in case or spacing are the same question."""
    return " ".join(question.casefold().split())


def dedupe_questions(key: str, pairs: list[QAPair]) -> tuple[list[QAPair], list[Reject]]:
    """Keep the first of identical questions within one clip (in category order)."""
    kept, dropped, seen = [], [], set()
    for pair in pairs:
        normalised = question_key(pair.question)
        if normalised in seen:
            dropped.append(Reject(key=key, stage=_STAGE, scope=RejectScope.pair, reason="duplicate_question",
                                  category=pair.category, question=pair.question,
                                  detail=f"{pair.category}: the same question is already asked in this clip"))
            continue
        seen.add(normalised)
        kept.append(pair)
    return kept, dropped


def drop_media_tokens(key: str, pairs: list[QAPair]) -> tuple[list[QAPair], list[Reject]]:
    """Drop pairs whose text holds a media token: training code would take it for the video (or an image)."""
    kept, dropped = [], []
    for pair in pairs:
        token = next((t for t in _MEDIA_TOKENS if t in pair.question or t in pair.short_answer), None)
        if token is None:
            kept.append(pair)
            continue
        dropped.append(Reject(key=key, stage=_STAGE, scope=RejectScope.pair, reason="media_token_in_text",
                              category=pair.category, question=pair.question,
                              detail=f"{pair.category}: the text contains {token!r}, which LLaVA-style loaders "
                                     "replace with the video"))
    return kept, dropped


def _clip_reject(key: str, reason: str, detail: str) -> Reject:
    return Reject(key=key, stage=_STAGE, scope=RejectScope.clip, reason=reason, detail=detail)


def clip_outcome(result: GeminiResult, post: PostParams, answer_format: str) -> ClipOutcome:
    """Parse one answer and apply the policy: dedupe, minimum pairs, all seven categories."""
    key = result.key
    if result.status not in (ResponseStatus.ok, ResponseStatus.truncated):
        why = result.block_reason or result.error or result.finish_reason or "no text"
        return ClipOutcome(rejects=[Reject(key=key, stage="generate", reason=f"response_{result.status.value}",
                                           detail=why)])
    parsed = parse_answer(result.text or "", answer_format, truncated=result.status is ResponseStatus.truncated)
    outcome = ClipOutcome(pairs_parsed=len(parsed.pairs), parsed_as=parsed.format)
    if not parsed.pairs and [p.reason for p in parsed.problems] == ["no_qa_blocks"]:
        outcome.rejects.append(_clip_reject(key, "no_qa_blocks", parsed.problems[0].detail))
        return outcome
    outcome.rejects += [Reject(key=key, stage=_STAGE, scope=RejectScope.pair, reason=p.reason, detail=p.detail,
                               category=p.category, question=p.question) for p in parsed.problems]
    pairs = sorted((QAPair(category=c, question=q, **{"short answer": a}) for c, q, a in parsed.pairs),
                   key=lambda p: _CATEGORY_ORDER[p.category])
    pairs, dropped = drop_media_tokens(key, pairs)
    outcome.rejects += dropped
    if post.dedupe_questions:
        pairs, dropped = dedupe_questions(key, pairs)
        outcome.rejects += dropped
    missing = [c for c in EVUD_CATEGORIES if c not in {p.category for p in pairs}]
    if not pairs:
        outcome.rejects.append(_clip_reject(key, "no_pairs", "no usable QA pair (see this clip's pair rejects)"))
    elif len(pairs) < post.min_pairs:
        outcome.rejects.append(_clip_reject(key, "too_few_pairs", f"{len(pairs)} pairs, post.min_pairs is "
                                            f"{post.min_pairs}"))
    elif post.require_all_categories and missing:
        outcome.rejects.append(_clip_reject(key, "missing_categories", f"missing {', '.join(missing)} "
                                            "(post.require_all_categories is true)"))
    else:
        outcome.pairs = pairs
    return outcome


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dataset, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def reject_sort_key(reject: Reject) -> tuple[str, ...]:
    return (reject.key, reject.scope.value, reject.reason, reject.category or "", reject.question or "",
            reject.detail or "")


def build_dataset(manifest: list[ClipRecord], results: list[GeminiResult], post: PostParams, answer_format: str,
                  gold: GoldIndex) -> tuple[list[LlavaRecord], list[Reject], dict[str, Any]]:
    """Records, rejects and metrics from the manifest and the answers (pure: no file is touched)."""
    clips = {c.key: c for c in manifest}
    results = sorted(results, key=lambda r: (r.video_uid, r.clip_uid, r.annotation_uid, r.language_query_index))
    records: list[LlavaRecord] = []
    rejects: list[Reject] = []
    formats: Counter[str] = Counter()
    pairs_parsed = gold_applied = 0
    for result in results:
        clip = clips.get(result.key)
        if clip is None:
            rejects.append(_clip_reject(result.key, "unknown_clip", "response for a clip that is not in the manifest"))
            continue
        outcome = clip_outcome(result, post, answer_format)
        rejects += outcome.rejects
        pairs_parsed += outcome.pairs_parsed
        if outcome.parsed_as:
            formats[outcome.parsed_as] += 1
        if outcome.pairs:
            pairs, applied = apply_gold(clip.key, outcome.pairs, gold)
            try:
                records.append(build_record(clip, pairs, post, human_annotated=applied > 0))
            except ValidationError as err:  # e.g. a manifest line without a duration: that clip only
                rejects.append(_clip_reject(clip.key, "invalid_record", f"{err.error_count()} error(s): "
                                            f"{err.errors()[0]['loc']}: {err.errors()[0]['msg']}"))
                continue
            gold_applied += applied
    report_unmatched(gold, set(clips), {r.id for r in records})
    rejects = sorted(rejects + gold.rejects, key=reject_sort_key)
    metrics = dataset_metrics(manifest, results, records, rejects, pairs_parsed, formats,
                              gold_metrics(gold, gold_applied))
    return sorted(records, key=record_sort_key), rejects, metrics


def run(post: PostParams, prompt: PromptParams, manifest_path: Path, responses: Path, out: Path, rejects_path: Path,
        metrics: Path, plots_dir: Path | None = None) -> list[LlavaRecord]:
    manifest = [ClipRecord.model_validate(r) for r in read_jsonl(manifest_path)]
    results = [GeminiResult.model_validate(r) for r in read_jsonl(responses)]
    gold = load_gold_answers(post.gold_answers)
    records, rejects, figures = build_dataset(manifest, results, post, prompt.format, gold)
    write_dataset(out, records)
    write_jsonl(rejects_path, rejects)
    write_json(metrics, figures)
    if plots_dir is not None:
        for name, rows in plot_data(records, rejects, post.duration_bin_s).items():
            write_json(plots_dir / name, rows)
    print(summarise_failures("postprocess", [(r.key, f"{r.reason}: {r.detail}") for r in rejects]), file=sys.stderr)
    print(f"postprocess: {len(records)} records, {figures['qa_pairs']} QA pairs, "
          f"{figures['human_annotated']} human-annotated -> {out}", file=sys.stderr)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rejects", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots-dir", type=Path, default=None, help="where to write the plot data files")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run_stage("postprocess", lambda: run(
        load_section("post", args.params), load_section("prompt", args.params), args.manifest, args.responses,
        args.out, args.rejects, args.metrics, args.plots_dir), on_interrupt="nothing was written; run again")


if __name__ == "__main__":
    main()
