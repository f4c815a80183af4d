"""Progress for long loops (done/total, rate, ETA, failures so far) and the end-of-stage failure summary."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable

from tqdm import tqdm


def progress_bar(total: int, desc: str) -> tqdm:
    """A tqdm bar on stderr; EVUD_PROGRESS=0 turns it off (logs of batch jobs)."""
    disable = os.environ.get("EVUD_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=disable, dynamic_ncols=True)


def summarise_failures(stage: str, reasons: Iterable[tuple[str, str]], shown: int = 20) -> str:
    """A readable block: counts by reason, then the first items with their reasons."""
    items = list(reasons)
    if not items:
        return f"{stage}: no failures"
    counts = Counter(reason.split(":", 1)[0] for _, reason in items)
    lines = [f"{stage}: {len(items)} item(s) not done"]
    lines += [f"  {count:6d}  {reason}" for reason, count in counts.most_common()]
    lines += [f"  - {key}: {reason}" for key, reason in items[:shown]]
    if len(items) > shown:
        lines.append(f"  ... and {len(items) - shown} more (see the manifest / rejects file)")
    return "\n".join(lines)
