"""The local store: state that must outlive runs (frame strips) and that no DVC out may hold.

DVC deletes a stage's outs before it runs, and `dvc exp run` checks persisted outs out again from
dvc.lock, so a cache kept inside an out would be lost or rolled back; the store sits beside them.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "EVUD_STORE"
STORE_DIR_NAME = ".evud"


def store_root() -> Path:
    """$EVUD_STORE, else $DVC_ROOT/.evud (DVC sets it, even for queued and temp experiments), else ./.evud."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]) / STORE_DIR_NAME
    return Path(STORE_DIR_NAME)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a reader (or a crash) never sees half of it: temp file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
