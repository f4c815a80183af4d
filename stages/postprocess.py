"""Stage `postprocess`: parse Gemini's answers into LLaVA instruction-tuning records (EVUD layout).

    python -m stages.postprocess --manifest data/clips.jsonl --responses data/responses.jsonl \
        --out data/ego4d_vqa_gemini.json --rejects data/rejects.jsonl --metrics metrics/postprocess.json

Nothing here calls Gemini: changing the parser or the policy re-parses the stored answers for free.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .answers import EVUD_CATEGORIES, capitalise_first, parse_qa_blocks
from .jsonl import read_jsonl, write_json, write_jsonl
from .params import PostParams, load_section
from .progress import summarise_failures
from .records import ClipRecord, GeminiResult, LlavaRecord, QAPair, Reject, ResponseStatus, Turn

_CATEGORY_ORDER = {name: i for i, name in enumerate(EVUD_CATEGORIES)}


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


def clip_pairs(result: GeminiResult, post: PostParams) -> tuple[list[QAPair], list[Reject]]:
    """The QA pairs kept for one clip (empty if the clip is rejected) and every reject with its reason."""
    key = result.key
    if result.status not in (ResponseStatus.ok, ResponseStatus.truncated):
        why = result.block_reason or result.error or result.finish_reason or "no text"
        return [], [Reject(key=key, stage="generate", reason=f"response_{result.status.value}", detail=why)]
    parsed = parse_qa_blocks(result.text or "", truncated=result.status is ResponseStatus.truncated)
    rejects = [Reject(key=key, stage="postprocess", reason=reason, detail=detail.strip())
               for reason, _, detail in (p.partition(":") for p in parsed.problems)]
    pairs = sorted((QAPair(category=c, question=q, **{"short answer": a}) for c, q, a in parsed.pairs),
                   key=lambda p: _CATEGORY_ORDER[p.category])
    missing = [c for c in EVUD_CATEGORIES if c not in {p.category for p in pairs}]
    if not pairs:
        return [], rejects or [Reject(key=key, stage="postprocess", reason="no_pairs", detail="nothing parsed")]
    if post.require_all_categories and missing:
        return [], rejects + [Reject(key=key, stage="postprocess", reason="missing_categories",
                                     detail=f"missing {', '.join(missing)}")]
    return pairs, rejects


def build_record(clip: ClipRecord, pairs: list[QAPair], post: PostParams) -> LlavaRecord:
    video = f"{post.video_root}/{clip.clip_path}" if post.video_root else clip.clip_path
    return LlavaRecord(**{
        "id": clip.key, "video": video, "ego4d_video_uid": clip.video_uid, "ego4d_clip_uid": clip.clip_uid,
        "ego4d_annotation_uid": clip.annotation_uid, "ego4d_language_query_index": clip.language_query_index,
        "duration_(s)": clip.duration, "human_annotated": False,
        "conversations": build_conversation(pairs, post.seed, clip.key),
        "category_question_answer_tuples": pairs,
    })


def write_dataset(path: Path, records: list[LlavaRecord]) -> None:
    """The LLaVA JSON list, fields in the published order, records sorted by id: byte-identical reruns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump([r.to_json_dict() for r in sorted(records, key=lambda r: r.id)], f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def postprocess_metrics(manifest: list[ClipRecord], results: list[GeminiResult], records: list[LlavaRecord],
                        rejects: list[Reject]) -> dict[str, Any]:
    pairs = [p for r in records for p in r.category_question_answer_tuples]
    answered = [r for r in results if r.status in (ResponseStatus.ok, ResponseStatus.truncated)]
    return {
        "queries": len(manifest),
        "clips_answered": len(results),
        "clips_out": len(records),
        "qa_pairs": len(pairs),
        "parse_yield": round(len(records) / len(answered), 4) if answered else None,
        "rejects_by_reason": dict(sorted(Counter(r.reason for r in rejects).items())),
        "pairs_per_category": {c: sum(p.category == c for p in pairs) for c in EVUD_CATEGORIES},
        "human_annotated": sum(r.human_annotated for r in records),
    }


def run(post: PostParams, manifest_path: Path, responses: Path, out: Path, rejects_path: Path, metrics: Path) -> list[LlavaRecord]:
    manifest = [ClipRecord.model_validate(r) for r in read_jsonl(manifest_path)]
    clips = {c.key: c for c in manifest}
    results = [GeminiResult.model_validate(r) for r in read_jsonl(responses)]
    records: list[LlavaRecord] = []
    rejects: list[Reject] = []
    for result in results:
        clip = clips.get(result.key)
        if clip is None:
            rejects.append(Reject(key=result.key, stage="postprocess", reason="unknown_clip",
                                  detail="response for a clip that is not in the manifest"))
            continue
        pairs, clip_rejects = clip_pairs(result, post)
        rejects += clip_rejects
        if pairs:
            records.append(build_record(clip, pairs, post))
    rejects.sort(key=lambda r: (r.key, r.stage, r.reason, r.detail or ""))
    write_dataset(out, records)
    write_jsonl(rejects_path, rejects)
    write_json(metrics, postprocess_metrics(manifest, results, records, rejects))
    print(summarise_failures("postprocess", [(r.key, f"{r.reason}: {r.detail}") for r in rejects]), file=sys.stderr)
    print(f"postprocess: {len(records)} records, {sum(len(r.conversations) // 2 for r in records)} QA pairs -> {out}",
          file=sys.stderr)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rejects", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run(load_section("post", args.params), args.manifest, args.responses, args.out, args.rejects, args.metrics)


if __name__ == "__main__":
    main()
