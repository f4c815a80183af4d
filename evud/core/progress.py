"""Progress for long loops (done/total, rate, ETA, failures so far) and the end-of-stage failure summary."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evud.core.errors import UserError
from evud.core.jsonl import write_json
from evud.core.store import store_root


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


def failures_accepted() -> bool:
    """EVUD_ALLOW_FAILED=1: build the dataset from what succeeded; failed items are recorded, the stage exits 0."""
    return os.environ.get("EVUD_ALLOW_FAILED", "").strip().lower() in ("1", "true", "yes")


class StageIncomplete(UserError):
    """Items failed for a reason a re-run can fix: the stage wrote what it has and exits non-zero, so DVC does
    not lock it and the next `dvc repro` / `dvc exp run` runs it again (asking only what is missing)."""


def check_complete(stage: str, retryable: list[tuple[str, str]], succeeded: int, total: int, unit: str,
                   verb: str) -> None:
    """Raise StageIncomplete when retryable failures remain (unless accepted) or when nothing succeeded at all."""
    if retryable and not failures_accepted():
        counts = Counter(reason.split(":", 1)[0] for _, reason in retryable)
        why = ", ".join(f"{reason} x{n}" for reason, n in counts.most_common())
        raise StageIncomplete(
            f"{stage}: {len(retryable)} of {total} {unit}(s) failed for a reason a retry can fix ({why}). Everything "
            f"else is kept. The stage exits 1 so that the next `dvc repro` or `dvc exp run` {verb} these "
            f"{len(retryable)} again (and nothing else); to build the dataset from what succeeded instead, run with "
            "EVUD_ALLOW_FAILED=1.")
    if total and not succeeded:
        raise StageIncomplete(f"{stage}: none of the {total} {unit}(s) succeeded; see the reasons above. Fix the "
                              "cause and run again (nothing that succeeded earlier is redone).")


def write_run_report(stage: str, facts: dict[str, Any]) -> Path:
    """Facts of this run (calls, hits, rates, timings) in an untracked report under the store; returns its path.

    They differ from run to run, so they stay out of the tracked metrics, which hold facts of the data only.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    path = store_root() / "reports" / stage / f"{stamp}-{os.getpid()}.json"
    write_json(path, facts)
    return path
