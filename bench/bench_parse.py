"""Parse speed and robustness: the published EVUD post-processing parser vs ours, side by side, one run.

    python -m bench.bench_parse            # about 30 s on 2 cores

1. Variants: every answer of tests/answer_variants.py (plus three blocked responses) through both parsers:
   published = handled / handled but wrong / crashed / blocked (counted as missing); ours = all pairs
   recovered / rejected or partly recovered with a reason / crashed.
2. Speed and memory: 10,000 and 100,000 answers, each measurement in a fresh process (wall time of the
   parse, peak RSS of the process). The published parser only gets answers it can handle (it stops the
   run at the first one it cannot); ours gets the same answers, then the whole variant mix.

The published parser is re-implemented here from its logic (prepare_ego4d_vqa_gemini_dataset.py,
`preprocess_data`): split on blank lines, `key: value` per line, lowercase keys and values and rewrite
"localization", sort by category, assert the seven categories in order, deep-copy each record; then
`prepare_turns` (capitalize(), a fixed 0..6 shuffle), where a missing or renamed key crashes too. The
variant count runs both; the speed figures time `preprocess_data` (the parse) only. Only for comparison:
nothing in stages/ uses it.
"""

from __future__ import annotations

import copy
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from evud.dataset.answers import parse_answer
from tests.support.answer_variants import BLOCKED_RESPONSES, VARIANTS

ROOT = Path(__file__).resolve().parents[1]

PUBLISHED_CATEGORIES = ["object recognition", "attribute recognition", "object state recognition",
                        "object localisation", "spatial reasoning", "functional reasoning", "world knowledge"]
SIZES = (10_000, 100_000)


# --- the published parser, re-implemented ---------------------------------------------------------

def published_preprocess(gen_data: list[dict]) -> tuple[list[dict], list[dict]]:
    """The published `preprocess_data`: raises on the first answer it cannot read (the run stops)."""
    order = {c: i for i, c in enumerate(PUBLISHED_CATEGORIES)}
    processed, missing = [], []
    for record in gen_data:
        candidates = record["response"].get("candidates", [])
        if len(candidates) < 1 or "content" not in candidates[0]:
            missing.append(record)
            continue
        text = candidates[0]["content"]["parts"][0]["text"]
        examples = []
        for chunk in text.split("\n\n"):
            example = {}
            for line in (line for line in chunk.splitlines() if line):
                key, value = line.split(": ", 1)  # ValueError on a line without ": "
                example[key.strip().lower()] = value.strip().lower().replace("localization", "localisation")
            examples.append(example)
        examples.sort(key=lambda e: order.get(e["category"], float("inf")))  # KeyError without a category
        for example, category in zip(examples, PUBLISHED_CATEGORIES):
            assert category == example["category"].lower()
        kept = copy.deepcopy(record)
        kept["processed_examples"] = examples
        processed.append(kept)
    return processed, missing


def published_turns(processed: dict, rng: random.Random) -> list[dict]:
    """The published `prepare_turns`: capitalize() each turn, shuffle a fixed 0..6 order (IndexError below 7)."""
    humans = [{"from": "human", "value": e["question"].capitalize()} for e in processed["processed_examples"]]
    gpts = [{"from": "gpt", "value": e["short answer"].capitalize()} for e in processed["processed_examples"]]
    order = list(range(7))
    rng.shuffle(order)
    conversation = []
    for position, index in enumerate(order):
        human = humans[index]
        if position == 0:
            human["value"] = f"<video>\n{human['value']}"
        conversation += [human, gpts[index]]
    return conversation


def gen_record(text: str | None, response: dict | None = None) -> dict:
    """One entry of the published gemini_responses.json."""
    if response is None:
        # The shape of a Vertex generateContent response as the published script stored it (it deep-copies it).
        ratings = [{"category": f"HARM_CATEGORY_{name}", "probability": "NEGLIGIBLE", "probabilityScore": 0.05,
                    "severity": "HARM_SEVERITY_NEGLIGIBLE", "severityScore": 0.03}
                   for name in ("HATE_SPEECH", "DANGEROUS_CONTENT", "HARASSMENT", "SEXUALLY_EXPLICIT")]
        response = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                                    "safetyRatings": ratings, "avgLogprobs": -0.21}],
                    "usageMetadata": {"promptTokenCount": 2480, "candidatesTokenCount": 190, "totalTokenCount": 2670,
                                      "promptTokensDetails": [{"modality": "VIDEO", "tokenCount": 2400},
                                                              {"modality": "TEXT", "tokenCount": 80}]},
                    "modelVersion": "gemini-1.5-pro-preview-0409", "createTime": "2024-05-01T12:00:00Z",
                    "responseId": "example-response-id"}
    return {"example": {"id": 0, "video_uid": "v", "clip_uid": "c", "annotation_uid": "a", "language_query_index": 0,
                        "video_filename": "ego4d_vqa_videos/v.mp4"}, "response": response}


# --- variant counts -------------------------------------------------------------------------------

def published_outcome(record: dict, expected: list[tuple[str, str, str]] | None) -> str:
    try:
        processed, missing = published_preprocess([record])
        if missing:
            return "blocked"
        published_turns(processed[0], random.Random(42))
    except Exception:
        return "crashed"
    got = [(e.get("category"), e.get("question"), e.get("short answer")) for e in processed[0]["processed_examples"]]
    want = sorted(((c, q.lower(), a.lower()) for c, q, a in expected or []), key=lambda t: PUBLISHED_CATEGORIES.index(t[0]))
    return "handled" if got == want else "handled_but_wrong"


def our_outcome(text: str, truncated: bool, expected: list[tuple[str, str, str]], reasons: list[str]) -> str:
    try:
        parsed = parse_answer(text, "text", truncated=truncated)
    except Exception:
        return "crashed"
    pairs_ok = [tuple(p) for p in parsed.pairs] == expected
    reasons_ok = sorted(p.reason for p in parsed.problems) == reasons
    if pairs_ok and reasons_ok:
        return "recovered" if not reasons else "recovered_and_reported"
    return "wrong"


def our_blocked_outcome(response: dict) -> str:
    from google.genai import types

    from evud.core.params import PostParams
    from evud.core.records import GeminiResult
    from evud.dataset.policy import clip_outcome
    from evud.gemini.backend import classify_response

    classified = classify_response(types.GenerateContentResponse.model_validate(response))
    result = GeminiResult(video_uid="v", clip_uid="c", annotation_uid="a", language_query_index=0, request_key="k",
                          clip_sha256="0", model="m", backend="replay", status=classified.status,
                          text=classified.text, block_reason=classified.block_reason)
    outcome = clip_outcome(result, PostParams(), "text")
    return "rejected_with_reason" if outcome.rejects and not outcome.pairs else "wrong"


def variant_table() -> tuple[list[tuple[str, str, str]], list[str]]:
    rows, handled_texts = [], []
    for v in VARIANTS:
        published = published_outcome(gen_record(v.text), v.pairs)
        rows.append((v.name, published, our_outcome(v.text, v.truncated, v.pairs, v.reasons)))
        if published == "handled":
            handled_texts.append(v.text)
    for name, response in BLOCKED_RESPONSES.items():
        rows.append((name, published_outcome(gen_record(None, response), None), our_blocked_outcome(response)))
    return rows, handled_texts


# --- speed and memory, one fresh process per measurement ------------------------------------------

def measure(parser: str, corpus: str, n: int) -> dict:
    """Runs inside the child process: build n answers, parse them all, report time and peak RSS."""
    _, handled = variant_table()
    texts = handled if corpus == "handled" else [v.text for v in VARIANTS]
    answers = [texts[i % len(texts)] for i in range(n)]
    if parser == "published":
        gen_data = [gen_record(t) for t in answers]
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        processed, _ = published_preprocess(gen_data)
        elapsed = time.perf_counter() - started
        assert len(processed) == n
    else:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        parsed = [parse_answer(t, "text") for t in answers]
        elapsed = time.perf_counter() - started
        assert len(parsed) == n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": elapsed, "peak_rss_mb": peak / 1024, "growth_mb": (peak - baseline) / 1024}


def run_child(parser: str, corpus: str, n: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.bench_parse", "--measure", parser, corpus, str(n)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    rows, handled = variant_table()
    print(f"Answer variants: {len(VARIANTS)} text answers + {len(BLOCKED_RESPONSES)} blocked responses "
          f"= {len(rows)}\n")
    print(f"{'variant':42} {'published':20} ours")
    for name, published, ours in rows:
        print(f"{name:42} {published:20} {ours}")
    count = {side: {} for side in ("published", "ours")}
    for _, published, ours in rows:
        count["published"][published] = count["published"].get(published, 0) + 1
        count["ours"][ours] = count["ours"].get(ours, 0) + 1
    print(f"\npublished: {json.dumps(dict(sorted(count['published'].items())))}")
    print(f"ours:      {json.dumps(dict(sorted(count['ours'].items())))}\n")

    print(f"Speed ({len(handled)} answer shapes the published parser handles, repeated; fresh process each)")
    print(f"{'answers':>8}  {'parser':10} {'corpus':8} {'wall s':>7} {'answers/s':>10} {'peak RSS MB':>12} "
          f"{'RSS growth MB':>14}")
    for n in SIZES:
        for parser, corpus in (("published", "handled"), ("ours", "handled"), ("ours", "all")):
            m = run_child(parser, corpus, n)
            print(f"{n:>8}  {parser:10} {corpus:8} {m['seconds']:7.2f} {n / m['seconds']:10.0f} "
                  f"{m['peak_rss_mb']:12.0f} {m['growth_mb']:14.0f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
