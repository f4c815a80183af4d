"""Synthetic EVUD-shaped data for the benchmarks: words, Ego4D-like uids, seven QA pairs and their LLaVA record."""

from __future__ import annotations

import random
from typing import Any

from evud.core.domain import EVUD_CATEGORIES

WORDS = ("cup knife bread table left right hand door open close red blue green bowl plate shelf drawer person "
         "walks picks puts cuts washes holds kitchen sink counter towel bag phone box lid pan stove small large "
         "wooden metal white black before after while near under above inside behind").split()


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def uid(rng: random.Random) -> str:
    return "%08x-%04x-4%03x-8%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                            rng.getrandbits(12), rng.getrandbits(48))


def qa_pairs(rng: random.Random, verdicts: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One pair per EVUD category, as the published tuples hold them (with a verdict drawn from `verdicts`, if any)."""
    pairs = [{"category": c, "question": f"What {words(rng, 4, 10)}?", "short answer": words(rng, 1, 6).capitalize()}
             for c in EVUD_CATEGORIES]
    for pair in pairs if verdicts else ():
        pair["verdict"] = rng.choice(verdicts)
    return pairs


def llava_record(key: str, ids: dict[str, Any], clip_path: str, duration: float, n: int,
                 pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """A record of ego4d_vqa_gemini.json: the pairs as a conversation, `<video>` opening the first human turn."""
    turns = []
    for i, pair in enumerate(pairs):
        turns += [{"from": "human", "value": ("<video>\n" if i == 0 else "") + pair["question"]},
                  {"from": "gpt", "value": pair["short answer"]}]
    return {"id": key, "video": f"ego4d_vqa_gemini_videos/{clip_path}", "ego4d_video_uid": ids["video_uid"],
            "ego4d_clip_uid": ids["clip_uid"], "ego4d_annotation_uid": ids["annotation_uid"],
            "ego4d_language_query_index": ids["language_query_index"], "duration_(s)": duration,
            "human_annotated": n % 70 == 0, "conversations": turns, "category_question_answer_tuples": pairs}
