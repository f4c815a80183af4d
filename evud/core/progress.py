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


def progress_bar(total: int, desc: str, disable: bool = False) -> tqdm:
    """A tqdm bar on stderr; EVUD_PROGRESS=0 turns it off (logs of batch jobs)."""
    disable = disable or os.environ.get("EVUD_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=disable, dynamic_ncols=True)


def reason_code(reason: str) -> str:
    """The code a reason starts with: `api_error_503` of `api_error_503: UNAVAILABLE: ...`, `failed:timeout` of
    `failed:timeout: no answer ...`, `source_missing` of `source_missing: s3://... does not exist`."""
    return reason.split(": ", 1)[0].strip()


def summarise_failures(stage: str, reasons: Iterable[tuple[str, str]], shown: int = 20) -> str:
    """A readable block: counts by reason, then the first items with their reasons."""
    items = list(reasons)
    if not items:
        return f"{stage}: no failures"
    counts = Counter(reason_code(reason) for _, reason in items)
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
        counts = Counter(reason_code(reason) for _, reason in retryable)
        why = ", ".join(f"{reason} x{n}" for reason, n in counts.most_common())
        raise StageIncomplete(
            f"{stage}: {len(retryable)} of {total} {unit}(s) failed for a reason a retry can fix ({why}). Everything "
            f"else is kept. The stage exits 1 so that DVC does not lock it: run `dvc repro` (or the same `dvc exp "
            f"run`) again and it {verb} these {len(retryable)} again, and nothing else; to build the dataset from "
            "what succeeded instead, run with EVUD_ALLOW_FAILED=1.")
    if total and not succeeded:
        raise StageIncomplete(f"{stage}: none of the {total} {unit}(s) succeeded; see the reasons above. Fix the "
                              "cause and run again (nothing that succeeded earlier is redone).")


def write_run_report(stage: str, facts: dict[str, Any]) -> Path:
    """Facts of this run (calls, hits, rates, timings) in an untracked report under the store; returns its path.

    They differ from run to run, so they stay out of the tracked metrics, which hold facts of the data only.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    path = store_root() / "reports" / stage / f"{stamp}-{os.getpid()}.json"
    try:
        write_json(path, facts)
    except OSError as err:  # a full disk: the report is a convenience, the run's own outcome is what to say
        print(f"warning: the run report {path} could not be written ({err.strerror or err})", file=sys.stderr)
    return path
