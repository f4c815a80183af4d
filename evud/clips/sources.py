"""Source videos: what identifies one's content without reading it (the store's checksum, or a local file's
size and edges), looked up once per video, with the reason when a source cannot be reached."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import fsspec

from evud.clips.video import CutError


def storage_options(url: str, s3_endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for a source URL; credentials are never here (standard chains only)."""
    if url.startswith("s3://") and s3_endpoint_url:
        return {"endpoint_url": s3_endpoint_url}
    return {}


@dataclass(frozen=True)
class SourceFingerprint:
    """What identifies a source's content without reading it, or why the source cannot be reached."""

    url: str
    fingerprint: str | None = None
    error: CutError | None = None


def source_fingerprint(url: str, storage_options: dict[str, Any]) -> str:
    """The store's checksum of a source, or a local file's size + edges."""
    if "://" in url and not url.startswith("file://"):
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        info = fs.info(path)
        for field in ("ETag", "etag", "md5Hash", "crc32c", "checksum"):
            if info.get(field):
                return f"{field}:{str(info[field]).strip(chr(34))}:{info.get('size')}"
        return f"size:{info.get('size')}"
    path = url.removeprefix("file://")
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(size - (1 << 20), 0))
        digest.update(f.read(1 << 20))
    return f"local:{size}:{digest.hexdigest()}"


def fingerprint_sources(urls: list[str], options: Callable[[str], dict[str, Any]]) -> dict[str, SourceFingerprint]:
    """One HEAD per video, in parallel; an unreachable source is recorded with its reason, never raised."""

    def one(url: str) -> SourceFingerprint:
        try:
            return SourceFingerprint(url, fingerprint=source_fingerprint(url, options(url)))
        except FileNotFoundError:
            return SourceFingerprint(url, error=CutError(f"source_missing: {url} does not exist (404)", permanent=True))
        except PermissionError as err:
            return SourceFingerprint(url, error=CutError(f"source_denied: {url}: access denied ({err}); "
                                                         "check your credentials"))
        except Exception as err:  # noqa: BLE001  one unreachable video (bad credentials, odd store) must not stop the run
            return SourceFingerprint(url, error=CutError(f"source_unreadable: {url}: {type(err).__name__}: {err}"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(urls, pool.map(one, urls)))
