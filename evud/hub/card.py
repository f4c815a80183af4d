"""The dataset card (README.md): the YAML header the Hub and `datasets` read (configs, features, license, ...) and
the body people read (what the data is, how it was made, its columns and figures, how to load it, its terms and
citations). Written with plain yaml: the stage does not import `datasets`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml

from evud.core.domain import EVUD_CATEGORIES
from evud.core.params import ExportParams
from evud.hub.layout import CLIPS_DIR, ClipKind
from evud.hub.rows import MetadataRow, column_descriptions, features_yaml
from evud.hub.sources import EVUD_CITATION, SOURCES, SourceCard

TASK_CATEGORIES = ["video-text-to-text", "visual-question-answering"]
TAGS = ["egocentric", "video-question-answering", "llava", "evud", "synthetic"]
# The Hub's size buckets (rows), smallest first.
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"))
NO_VERDICT = "(none: verify did not run)"
CONTENT_DIGITS = 12  # hex digits of metadata.jsonl's sha256 in the config's version: 48 bits, no collision in practice


@dataclass(frozen=True)
class CardFacts:
    """How the data was made, as far as the card says it: params the stage reads (dvc.yaml declares each)."""

    source: str  # data.source
    model: str  # gemini.model
    prompt_name: str  # prompt.name
    export: ExportParams

    @property
    def source_card(self) -> SourceCard:
        return SOURCES[self.source]


def features(kind: ClipKind) -> list[dict[str, Any]]:
    """Every column as `datasets` loads it: `video` first (a Video, or a string URI), then the rows' columns."""
    return [{"name": "video", "dtype": kind.dtype}, *features_yaml(MetadataRow)]


def license_fields(facts: CardFacts) -> dict[str, str]:
    """export.license (with its name and link) when set, else the source's."""
    chosen = facts.export if facts.export.license else facts.source_card
    fields = {"license": chosen.license, "license_name": chosen.license_name, "license_link": chosen.license_link}
    return {key: value for key, value in fields.items() if value}


def pretty_name(facts: CardFacts) -> str:
    return facts.export.pretty_name or f"EVUD-style egocentric video QA ({facts.source_card.label})"


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>10M")


def content_version(metadata: bytes) -> str:
    """The config's version, from the rows' bytes (which name each clip by its sha256): `datasets` keys its cache of
    a folder on the card alone, so without it every export with the same card (a re-export, another project's export
    in a folder of the same name) loads the rows the first one cached. A version must be `x.y.z` digits."""
    return f"0.0.{int(hashlib.sha256(metadata).hexdigest()[:CONTENT_DIGITS], 16)}"


def card_header(rows: list[MetadataRow], kind: ClipKind, files: list[str], facts: CardFacts,
                version: str) -> dict[str, Any]:
    """The YAML metadata block: one default config whose train split is `files` (its version the rows' content
    version), and every column's feature."""
    return {
        "pretty_name": pretty_name(facts),
        **license_fields(facts),
        "language": ["en"],
        "task_categories": TASK_CATEGORIES,
        "tags": [*TAGS, *facts.source_card.tags],
        "size_categories": [size_category(len(rows))],
        "configs": [{"config_name": "default", "version": version, "data_files": [{"split": "train", "path": files}]}],
        "dataset_info": {"features": features(kind)},
    }


# --- The body -------------------------------------------------------------------------------------------------------


def category_order(category: str) -> tuple[int, str]:
    return (EVUD_CATEGORIES.index(category) if category in EVUD_CATEGORIES else len(EVUD_CATEGORIES), category)


def figures_table(rows: list[MetadataRow]) -> list[str]:
    pairs = [pair for row in rows for pair in row.qa_pairs]
    seconds = sum(row.duration for row in rows)
    lines = ["| what | count |", "|---|---:|", f"| clips (rows) | {len(rows):,} |", f"| QA pairs | {len(pairs):,} |"]
    for category, count in sorted(Counter(p.category for p in pairs).items(), key=lambda kv: category_order(kv[0])):
        lines.append(f"| pairs: {category} | {count:,} |")
    for verdict, count in sorted(Counter(p.verdict or NO_VERDICT for p in pairs).items()):
        lines.append(f"| pairs by verdict: {verdict} | {count:,} |")
    lines.append(f"| clips with human gold answers | {sum(row.human_annotated for row in rows):,} |")
    mean = seconds / len(rows) if rows else 0.0
    lines.append(f"| clip time | {seconds / 60:,.1f} min (mean {mean:.1f} s) |")
    return lines


def type_name(feature: dict[str, Any]) -> str:
    if "list" in feature:
        return "list of {" + ", ".join(field["name"] for field in feature["list"]) + "}"
    return feature["dtype"]


def columns_table(kind: ClipKind) -> list[str]:
    meanings = column_descriptions()
    meanings["video"] = (f"the clip: its file under `{CLIPS_DIR}/` (metadata.jsonl names it in `file_name`)"
                         if kind is ClipKind.files else
                         "the clip's gs:// URI (the clips are not in this repository)")
    lines = ["| column | type | meaning |", "|---|---|---|"]
    for feature in features(kind):
        lines.append(f"| `{feature['name']}` | {type_name(feature)} | {meanings[feature['name']]} |")
    return lines


def loading_example(kind: ClipKind, facts: CardFacts) -> list[str]:
    repo = facts.export.repo_id or "<user>/<name>"
    lines = ["```python", "from datasets import Video, load_dataset", "",
             f'ds = load_dataset("{repo}", split="train")  # or a local copy: load_dataset("path/to/folder", ...)']
    if kind is ClipKind.files:
        lines += ['ds = ds.cast_column("video", Video(decode=False))  # paths, no decoding (decoding needs torchcodec)',
                  'print(ds[0]["video"]["path"], ds[0]["qa_pairs"][0])', "```", "",
                  "Without the cast, `ds[i][\"video\"]` is a decoder (torchcodec, which needs torch)."]
    else:
        lines += ['print(ds[0]["video"], ds[0]["qa_pairs"][0])  # the clip\'s gs:// URI', "```", "",
                  "The clips are not in this repository: fetch them from Cloud Storage (e.g. gcsfs) with access to "
                  "the bucket."]
    return lines


def citations(facts: CardFacts) -> list[str]:
    lines = ["The recipe (EVUD, from AlanaVLM):", "", "```bibtex", EVUD_CITATION, "```"]
    if facts.source_card.citation:
        lines += ["", f"The videos ({facts.source_card.label}):", "", "```bibtex", facts.source_card.citation, "```"]
    return lines


def card_body(rows: list[MetadataRow], kind: ClipKind, facts: CardFacts) -> str:
    source = facts.source_card
    pairs = sum(len(row.qa_pairs) for row in rows)
    lines = [
        f"# {pretty_name(facts)}", "",
        f"{len(rows):,} egocentric video clips from {source.label} with {pairs:,} question-answer pairs about them, "
        f"generated by Gemini (`{facts.model}`) with the recipe of EVUD, the egocentric video understanding data of "
        "AlanaVLM (arXiv 2406.13807), each clip's pairs also as a LLaVA conversation. Made with evud-gemini.", "",
        "## Terms of use", "", source.terms, "",
        "## How it was made", "",
        f"- **Windows**: from {source.label}; `text` holds {source.text_meaning}. Each window was cut into a clip "
        "(`window_start` to `window_end` of the source video).",
        f"- **Questions and answers**: Gemini (`{facts.model}`) was shown each clip with the prompt "
        f"`{facts.prompt_name}` and asked for a question and a short answer per category; its answers were parsed "
        "into `qa_pairs`.",
        "- **Checks**: `verdict` is verify's verdict of a pair: `grounded`, `blind_answerable` (a model without the "
        "video gave the same answer), `unsupported` or `unverified`; \"\" when verify did not run. "
        "`human_annotated` marks clips with human gold answers.",
        "- **Conversations**: a clip's pairs as one multi-turn LLaVA conversation in an order shuffled per clip, "
        "`<video>` opening the first human turn, as in EVUD's `ego4d_vqa_gemini.json`.", "",
        "## Columns", "", *columns_table(kind), "",
        "## Figures", "", *figures_table(rows), "",
        "## Loading", "", *loading_example(kind, facts), "",
        "## Citation", "", *citations(facts), "",
    ]
    return "\n".join(lines)


def dataset_card(rows: list[MetadataRow], kind: ClipKind, files: list[str], facts: CardFacts, version: str) -> str:
    """README.md: the YAML header between `---` lines, then the body; `version` is content_version's."""
    header = yaml.safe_dump(card_header(rows, kind, files, facts, version), sort_keys=False, allow_unicode=True,
                            width=1000)
    return f"---\n{header}---\n\n{card_body(rows, kind, facts)}"
