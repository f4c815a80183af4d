"""Checksums of files: sha256 (what names a clip's content everywhere) and the base64 MD5 GCS reports."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path


def file_digests(path: Path, with_md5: bool = True) -> tuple[str, str | None]:
    """(sha256 hex, md5 base64 or None) of a file in one pass; GCS reports md5, so uploads need it."""
    sha, md5 = hashlib.sha256(), hashlib.md5() if with_md5 else None
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            if md5 is not None:
                md5.update(block)
    return sha.hexdigest(), base64.b64encode(md5.digest()).decode() if md5 is not None else None
