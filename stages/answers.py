"""Parsing Gemini's `Category: / Question: / Short answer:` answers into QA pairs (pure functions).

Question and answer text is kept as Gemini wrote it (trimmed, markdown emphasis removed); only the
category name is normalised to one of the seven EVUD categories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EVUD_CATEGORIES = (
    "object recognition",
    "attribute recognition",
    "object state recognition",
    "object localisation",
    "spatial reasoning",
    "functional reasoning",
    "world knowledge",
)

# A key line: optional list marker / numbering / markdown, then the key, a colon, the value.
_KEY_LINE = re.compile(
    r"^\s*(?:[-*+•]\s+|\d+[.)]\s+|#+\s+)?[*_]*\s*(category|question|short\s+answer|answer)\s*[*_]*\s*[:：]\s*[*_]*\s*(.*)$",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1")
_FIELD_FOR_KEY = {"category": "category", "question": "question", "answer": "answer"}


@dataclass
class ParsedAnswer:
    pairs: list[tuple[str, str, str]] = field(default_factory=list)  # (category, question, answer)
    problems: list[str] = field(default_factory=list)  # one line per dropped block, with its reason


def normalise_category(raw: str) -> str | None:
    """One of EVUD_CATEGORIES, or None. Accepts case, US spelling, numbering, trailing punctuation."""
    name = strip_emphasis(raw).lower()
    name = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", name)
    name = re.sub(r"[^a-z ]+", " ", name.replace("localization", "localisation"))
    name = " ".join(name.split())
    return name if name in EVUD_CATEGORIES else None


def strip_emphasis(text: str) -> str:
    text = _EMPHASIS.sub(r"\2", text)
    return text.replace("**", "").strip()


def _blocks(text: str) -> list[dict[str, str]]:
    """Group key lines into blocks: each `Category:` opens one; other lines continue the last field."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    last_field: str | None = None
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if match:
            key = re.sub(r"\s+", " ", match.group(1).lower())
            name = "answer" if key in ("short answer", "answer") else _FIELD_FOR_KEY[key]
            if name == "category" or current is None or name in current:
                current = {}
                blocks.append(current)
            current[name] = match.group(2).strip()
            last_field = name
        elif current is not None and last_field is not None and line.strip():
            current[last_field] = f"{current[last_field]} {line.strip()}".strip()
    return blocks


def parse_qa_blocks(text: str, truncated: bool = False) -> ParsedAnswer:
    """All recoverable (category, question, answer) triples of one answer, with what was dropped and why."""
    parsed = ParsedAnswer()
    blocks = _blocks(text or "")
    seen: set[str] = set()
    for number, block in enumerate(blocks, 1):
        is_last = number == len(blocks)
        missing = [name for name in ("category", "question", "answer") if not strip_emphasis(block.get(name, ""))]
        if missing:
            reason = "truncated_block" if truncated and is_last else "incomplete_block"
            parsed.problems.append(f"{reason}: block {number} has no {'/'.join(missing)}")
            continue
        if truncated and is_last:
            # The answer was cut at MAX_TOKENS: its last block may end mid-sentence.
            parsed.problems.append(f"truncated_block: block {number} is the last of a truncated answer")
            continue
        category = normalise_category(block["category"])
        if category is None:
            parsed.problems.append(f"unknown_category: block {number} category {block['category']!r}")
            continue
        if category in seen:
            parsed.problems.append(f"duplicate_category: block {number} repeats {category!r}")
            continue
        seen.add(category)
        parsed.pairs.append((category, strip_emphasis(block["question"]), strip_emphasis(block["answer"])))
    if not blocks:
        parsed.problems.append("no_qa_blocks: no Category/Question/Short answer lines found")
    return parsed


def capitalise_first(text: str) -> str:
    """Upper-case the first letter only (EVUD capitalised, but str.capitalize also lowercased the rest)."""
    return text[:1].upper() + text[1:]
