"""Parsing Gemini's answers into (category, question, answer) triples: pure functions, no I/O.

Two formats, one result type (`ParsedAnswer`):
- text (`prompt=evud`): `Category: / Question: / Short answer:` blocks, in whatever shape Gemini chose
  (markdown bold keys, numbered or bulleted blocks, headings instead of `Category:` lines, a preamble,
  single newlines between blocks, `Answer:` for `Short answer:`, wrapped lines, a markdown table, ...);
- json (`prompt=evud_json`): a list of {category, question, answer} objects, validated with
  `QAItem`; a list cut at MAX_TOKENS keeps its complete items.

Question and answer text is kept as Gemini wrote it (trimmed, markdown emphasis removed); only the
category name is normalised to one of the seven EVUD categories. Nothing raises on a bad answer:
what cannot be used becomes a `Problem` with a reason and the item it is about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from evud.core.domain import EVUD_CATEGORIES

_CATEGORY_SET = frozenset(EVUD_CATEGORIES)


class QAItem(BaseModel):
    """One item of a structured answer (`prompt=evud_json`); conf/prompt/evud_json.yaml holds its JSON schema."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    category: str = Field(min_length=1)
    question: str = Field(min_length=1)
    # The schema says `answer`; the published tuples say `short answer`: accept both spellings.
    answer: str = Field(min_length=1, validation_alias=AliasChoices("answer", "short answer", "short_answer"))


class ParsedPair(NamedTuple):
    category: str  # one of EVUD_CATEGORIES
    question: str
    answer: str


@dataclass(frozen=True)
class Problem:
    """Something in one answer that could not be used, and which item it was."""

    reason: str  # a stable, countable name: truncated_block, unknown_category, ...
    detail: str
    category: str | None = None
    question: str | None = None


@dataclass
class ParsedAnswer:
    pairs: list[ParsedPair] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    format: str = "text"  # the format the answer was actually parsed as


# --- text cleaning ---------------------------------------------------------------------------------

# `**bold**` only between non-word characters: `x**2` and `2**10` are arithmetic. `__` is never treated as emphasis:
# `__init__` and `window.__xss` are identifiers, and Gemini marks bold with `**`.
_BOLD = re.compile(r"(?<![\w*])\*\*(?=[^\s*])(.+?)(?<=[^\s*])\*\*(?![\w*])")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
# `_` only at word edges: snake_case names and file_names inside an answer are not emphasis.
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")
# Markers a key's regex leaves at the edges of a value ("**Question:** What..." gives "** What...").
_DANGLING = re.compile(r"^\*+\s*|\s*\*+$")


def strip_emphasis(text: str) -> str:
    """Remove markdown bold/italic markers (paired, or left dangling at the edges by a key regex) and trim; never a
    character inside a word or an identifier."""
    text = text.strip()
    if "*" not in text and "_" not in text:
        return text
    text = _BOLD.sub(r"\1", text)
    text = _ITALIC_STAR.sub(r"\1", text)
    text = _ITALIC_UNDERSCORE.sub(r"\1", text)
    return _DANGLING.sub("", text).strip()


_PARENTHETICAL = re.compile(r"\([^)]*\)")
_NOT_LETTERS = re.compile(r"[^a-z]+")
_FILLER_WORDS = ("category", "categories", "question", "questions", "type")


@lru_cache(maxsize=4096)  # Gemini writes the same few category spellings millions of times
def normalise_category(raw: str) -> str | None:
    """One of EVUD_CATEGORIES, or None.

    Accepts case, the US spelling `localization`, numbering, list markers, markdown, trailing
    punctuation, `_`/`-` for spaces, a parenthetical gloss and a `category`/`question` filler word.
    """
    name = _PARENTHETICAL.sub(" ", raw.casefold()).replace("localization", "localisation")
    words = _NOT_LETTERS.sub(" ", name).split()
    while words and words[0] in _FILLER_WORDS:
        words.pop(0)
    while words and words[-1] in _FILLER_WORDS:
        words.pop()
    name = " ".join(words)
    return name if name in _CATEGORY_SET else None


def capitalise_first(text: str) -> str:
    """Upper-case the first letter only (EVUD capitalised, but str.capitalize also lowercased the rest)."""
    return text[:1].upper() + text[1:]


# --- the text format -------------------------------------------------------------------------------

# The full key-line grammar, for the spellings key_line's fast path misses (`Category - x`, a full-width
# colon, `Short   answer`). Leading decoration: list markers, numbering, headings, quotes, in any mix.
_MARKERS = r"(?:[-*+•]\s+|\(?\d{1,2}[.):]\s*|#{1,6}\s*|>\s*)*"
_KEY_LINE = re.compile(
    rf"^\s*{_MARKERS}[*_]*\s*"
    r"(?:(?P<key>category|question|short[\s_-]*answer|answer)(?:\s*\d{1,2})?\s*[*_]*\s*(?:[:：]|[-–—](?=\s))"
    r"|(?P<letter>q|a)\s*\d{0,2}\s*[*_]*\s*[:：])"  # Q:/A: need a real colon: "a - b" is prose
    r"[*_\s]*(?P<value>.*)$",
    re.IGNORECASE,
)
# Block fields, by position: a block is [category, question, answer] as written.
CATEGORY, QUESTION, ANSWER = 0, 1, 2
# Keys as written, once decoration is stripped off: what most key lines look like, found without a regex.
_KEY_FIELDS = {"category": CATEGORY, "question": QUESTION, "q": QUESTION, "answer": ANSWER, "a": ANSWER,
               "short answer": ANSWER, "short_answer": ANSWER, "short-answer": ANSWER}
_KEY_EDGES = " \t*_#>-+•.()0123456789"  # markers, numbering, emphasis around a key ("**1. Category**")
_KEY_MAX_CHARS = 40
# A key written in the middle of a line ("Category: x | Question: y"): split it onto its own line.
# Capitalised keys only, so that "the answer: yes" inside an answer stays where it is.
_INLINE_KEY = re.compile(r"(?:\s*[|;]\s*|\s+)(?=[*_]*(?:Category|Question|Short [Aa]nswer|Answer)[*_]*\s*:)")
_TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
_TABLE_RULE = re.compile(r"^[\s|:-]+$")
_HEADING_MAX_CHARS = 80
_RULE_CHARS = " \t-*_=—"


def key_line(line: str) -> tuple[int, str] | None:
    """(field, value) if the line is a `Key: value` line, else None."""
    head, colon, value = line.partition(":")
    if colon and len(head) <= _KEY_MAX_CHARS:
        field = _KEY_FIELDS.get(head.strip(_KEY_EDGES).lower())
        if field is not None:
            return field, value.lstrip(" \t*_").strip()
    match = _KEY_LINE.match(line)
    if match is None:
        return None
    key = " ".join((match.group("key") or match.group("letter")).lower().replace("_", " ").replace("-", " ").split())
    return _KEY_FIELDS.get(key, ANSWER), match.group("value").strip()


def _split_inline_keys(line: str) -> list[str]:
    return [part for part in _INLINE_KEY.split(line) if part.strip()]


def _heading_category(line: str) -> str | None:
    """The category a heading line names ("**1. Object Recognition**", "### World knowledge:"), or None."""
    if len(line) > _HEADING_MAX_CHARS:
        return None
    return normalise_category(strip_emphasis(line))


def _table_block(cells: list[str], columns: dict[int, int]) -> list[str | None]:
    """A table row as a block, using the header's column positions (or category|question|answer)."""
    return [cells[i] if i < len(cells) else None for i in (columns.get(f, f) for f in (CATEGORY, QUESTION, ANSWER))]


def _table_columns(cells: list[str]) -> dict[int, int] | None:
    """Column positions if these cells are a header row (Category | Question | Short answer)."""
    columns = {}
    for index, cell in enumerate(cells):
        name = strip_emphasis(cell).casefold()
        if name == "category":
            columns[CATEGORY] = index
        elif name in ("question", "q"):
            columns[QUESTION] = index
        elif name.endswith("answer") or name == "a":
            columns[ANSWER] = index
    return columns if len(columns) == 3 else None


def text_blocks(text: str) -> list[list[str | None]]:
    """Group an answer's lines into QA blocks ([category, question, answer]), whatever separates them.

    A block opens at a `Category:` line, at a heading that names a category, or at a `Question:` when the
    current block already has one; other text continues the field above it (a wrapped line) unless a
    blank line came first (then it is a preamble or a closing remark, and is ignored).
    """
    blocks: list[list[str | None]] = []
    current: list[str | None] | None = None
    last_field: int | None = None
    table_columns: dict[int, int] = {}
    for raw_line in text.splitlines():
        if not raw_line or raw_line.isspace():
            last_field = None
            continue
        row = _TABLE_ROW.match(raw_line) if "|" in raw_line else None
        if row:
            last_field = current = None
            cells = [c.strip() for c in row.group(1).split("|")]
            if _TABLE_RULE.match(row.group(1)):
                continue
            header = _table_columns(cells)
            if header:
                table_columns = header
            elif len(cells) >= 3:
                blocks.append(_table_block(cells, table_columns))
            continue
        # A line with one colon cannot hold two keys: split only the others (cheap test first).
        for line in _split_inline_keys(raw_line) if raw_line.count(":") > 1 or "：" in raw_line else (raw_line,):
            keyed = key_line(line)
            if keyed is not None:
                field, value = keyed
                # A new block at a Category or Question after a question/answer, or a second answer.
                if current is None or current[ANSWER] is not None or (field != ANSWER and current[QUESTION] is not None):
                    current = [None, None, None]
                    blocks.append(current)
                current[field] = value
                last_field = field
                continue
            if not line.strip(_RULE_CHARS):
                last_field = None  # a markdown rule (---, ***) between blocks: a separator, like a blank line
                continue
            heading = _heading_category(line)
            if heading is not None:
                # A heading names the next block's category (or the open one's, after a bare `Category:`).
                if current is None or current[QUESTION] is not None or current[ANSWER] is not None:
                    current = [None, None, None]
                    blocks.append(current)
                current[CATEGORY] = line.strip()
                last_field = None
            elif current is not None and last_field is not None:
                # A wrapped line: join it to the field it continues.
                current[last_field] = f"{current[last_field] or ''} {line.strip()}".strip()
    return blocks


def _describe(block_number: int, category: str | None, question: str | None) -> str:
    about = f"block {block_number}"
    if category:
        about += f" ({category})"
    if question:
        about += f" {question!r}"
    return about


def check_blocks(raw_blocks: Sequence[Sequence[str | None]], truncated: bool) -> ParsedAnswer:
    """Keep the usable (category, question, answer) blocks; every other block becomes a Problem.

    A truncated answer's last block is dropped even if it looks complete: it may end mid-sentence.
    """
    parsed = ParsedAnswer()
    seen: set[str] = set()
    last = len(raw_blocks)
    for number, (raw_category, raw_question, raw_answer) in enumerate(raw_blocks, 1):
        question = strip_emphasis(raw_question or "")
        answer = strip_emphasis(raw_answer or "")
        shown_category = strip_emphasis(raw_category or "") or None
        if truncated and number == last:
            parsed.problems.append(Problem("truncated_block", f"{_describe(number, shown_category, question)} is the "
                                           "last of an answer cut at MAX_TOKENS", shown_category, question or None))
            continue
        missing = [name for name, value in (("question", question), ("answer", answer)) if not value]
        if missing:
            parsed.problems.append(Problem("incomplete_block", f"{_describe(number, shown_category, question)} has "
                                           f"no {' or '.join(missing)}", shown_category, question or None))
            continue
        if not shown_category:
            parsed.problems.append(Problem("missing_category", f"{_describe(number, None, question)} names no "
                                           "category", None, question))
            continue
        category = normalise_category(shown_category)
        if category is None:
            parsed.problems.append(Problem("unknown_category", f"{_describe(number, shown_category, question)}: "
                                           f"{shown_category!r} is not an EVUD category", shown_category, question))
            continue
        if category in seen:
            parsed.problems.append(Problem("duplicate_category", f"{_describe(number, category, question)} repeats "
                                           "a category already answered; the first is kept", category, question))
            continue
        seen.add(category)
        parsed.pairs.append(ParsedPair(category, question, answer))
    return parsed


def parse_qa_blocks(text: str, truncated: bool = False) -> ParsedAnswer:
    """All recoverable (category, question, answer) triples of a text answer, with what was dropped and why."""
    blocks = text_blocks(text or "")
    if not blocks:
        return ParsedAnswer(problems=[Problem("no_qa_blocks", "no Category/Question/Short answer blocks found")])
    return check_blocks(blocks, truncated)


# --- the JSON format -------------------------------------------------------------------------------

_CODE_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?(.*?)\n?\s*(?:```\s*)?$", re.DOTALL)
_DECODER = json.JSONDecoder()


def strip_code_fence(text: str) -> str:
    """A JSON answer without the ```json fence a model may wrap it in (verify's checks read theirs with it too)."""
    match = _CODE_FENCE.match(text)
    return match.group(1) if match else text


def looks_like_json(text: str) -> bool:
    body = strip_code_fence(text or "").lstrip()
    return body[:1] in ("[", "{")


def _items_of(document: Any) -> list[Any] | None:
    """The list of QA items in a decoded answer: the list itself, one item, or a dict's only list."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if "question" in document:
            return [document]
        lists = [value for value in document.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def _salvage_items(body: str) -> tuple[list[Any], str]:
    """Decode the complete items of a JSON list that stops early; the error says where it stopped."""
    items: list[Any] = []
    position = body.find("[") + 1
    if position == 0:
        return items, "no JSON list"
    while True:
        while position < len(body) and body[position] in " \t\r\n,":
            position += 1
        if position >= len(body) or body[position] == "]":
            return items, "unexpected text after the list"
        try:
            item, position = _DECODER.raw_decode(body, position)
        except json.JSONDecodeError as err:
            return items, f"item {len(items) + 1} is not complete JSON ({err.msg} at char {err.pos})"
        items.append(item)


def parse_qa_json(text: str, truncated: bool = False) -> ParsedAnswer:
    """All recoverable triples of a JSON answer, each item validated with `QAItem`."""
    body = strip_code_fence(text or "").strip()
    problems: list[Problem] = []
    try:
        items = _items_of(json.loads(body))
        if items is None:
            return ParsedAnswer(problems=[Problem("invalid_json", "the answer is JSON but not a list of "
                                                  "{category, question, answer} objects")], format="json")
    except json.JSONDecodeError as err:
        items, where = _salvage_items(body)
        reason = "truncated_block" if truncated else "invalid_json"
        problems.append(Problem(reason, f"the JSON answer stops early: {where}"
                                + ("; cut at MAX_TOKENS" if truncated else f" ({err.msg})")))
    raw_blocks = []
    for number, item in enumerate(items, 1):
        try:
            qa = QAItem.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "item"
            problems.append(Problem("invalid_item", f"item {number}: {where}: {first['msg']}"))
            continue
        raw_blocks.append((qa.category, qa.question, qa.answer))
    # Only complete items reach here, so even a truncated answer keeps its last one.
    parsed = check_blocks(raw_blocks, truncated=False)
    parsed.problems[:0] = problems
    parsed.format = "json"
    if not items and not problems:
        parsed.problems.append(Problem("no_qa_blocks", "the JSON answer holds no items"))
    return parsed


def parse_answer(text: str, answer_format: str, truncated: bool = False) -> ParsedAnswer:
    """Parse one answer in the format the prompt asked for (`prompt.format`), or the one it evidently came in.

    The replay backend answers whatever the prompt, so a json prompt can get a text answer (and a text
    prompt a JSON one); such an answer is still parsed, and `ParsedAnswer.format` says which parser read it.
    """
    if answer_format == "json":
        return parse_qa_json(text, truncated) if looks_like_json(text) else parse_qa_blocks(text, truncated)
    parsed = parse_qa_blocks(text, truncated)
    if not parsed.pairs and looks_like_json(text):
        return parse_qa_json(text, truncated)
    return parsed
