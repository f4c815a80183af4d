"""JSON Lines and JSON files: canonical lines, tolerant reads, deterministic whole-or-nothing writes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evud.core.store import atomic_file


def dumps(record: BaseModel | dict[str, Any]) -> str:
    """One canonical JSON line: sorted keys, no NaN, so equal records give equal bytes."""
    data = record.model_dump(mode="json", by_alias=True) if isinstance(record, BaseModel) else record
    return json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSON Lines file; a torn last line (a crash mid-write) is skipped with a warning."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                print(f"warning: {path}:{number} is not complete JSON (interrupted write?); ignoring it", file=sys.stderr)


def write_jsonl(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write records atomically (temp file + rename); returns how many were written.

    A file of no record holds one empty line, not zero bytes: DVC warns "'<out>' is empty" at every save of an empty
    out, and a rejects file without a reject is good news, not a warning. Readers skip blank lines (read_jsonl, jq,
    pandas, `datasets`)."""
    count = 0
    with atomic_file(path) as f:
        for record in records:
            f.write(dumps(record) + "\n")
            count += 1
        if not count:
            f.write("\n")
    return count


def write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Write a JSON document atomically with sorted keys (metrics, the final dataset)."""
    with atomic_file(path) as f:
        json.dump(data, f, indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False)
        f.write("\n")
