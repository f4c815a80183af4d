"""Source videos: what identifies one's content without reading it (the store's checksum, or a local file's
size and edges), looked up once per video, with the reason when a source cannot be reached; and their durations,
read from the videos themselves when no metadata gives them, once per video content (kept in the store)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from evud.clips.video import CutError, source_failure, video_duration, with_timeouts
from evud.core.store import read_json_file, write_atomic


def storage_options(url: str, s3_endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for a source URL, with connect and read timeouts; credentials are never here (standard chains
    only)."""
    if url.startswith("s3://") and s3_endpoint_url:
        return with_timeouts(url, {"endpoint_url": s3_endpoint_url})
    return with_timeouts(url, {})


@dataclass(frozen=True)
class SourceFingerprint:
    """What identifies a source's content without reading it, or why the source cannot be reached."""

    url: str
    fingerprint: str | None = None
    error: CutError | None = None


# Checksums of the content itself, which identify a video wherever it lies: S3's ETag, GCS's md5Hash and crc32c.
_CONTENT_CHECKSUMS = ("ETag", "etag", "md5Hash", "crc32c", "checksum")


def source_fingerprint(url: str, storage_options: dict[str, Any]) -> str:
    """The store's checksum of a source, or a local file's size + edges.

    Over http(s), an ETag is the server's own token and a size is not content: the URL is part of the fingerprint
    (with the ETag or Last-Modified when the server sends them), so two videos of one size never share their clips."""
    if "://" in url and not url.startswith("file://"):
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        info = fs.info(path)
        if url.startswith(("http://", "https://")):
            version = info.get("ETag") or info.get("etag") or info.get("Last-Modified") or ""
            return f"url:{url}:{str(version).strip(chr(34))}:{info.get('size')}"
        for field in _CONTENT_CHECKSUMS:
            if info.get(field):
                return f"{field}:{str(info[field]).strip(chr(34))}:{info.get('size')}"
        return f"url:{url}:{info.get('size')}"
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
        except Exception as err:  # noqa: BLE001  one unreachable video (bad credentials, odd store) must not stop the run
            return SourceFingerprint(url, error=source_failure(url, err))

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(urls, pool.map(one, urls)))


class SourceLookup:
    """The fingerprints of a run's source videos, each looked up once (planning reads a duration kept by fingerprint,
    cutting keys the clip store by it), and how to reach each source (fsspec options, never credentials)."""

    def __init__(self, s3_endpoint_url: str | None = None):
        self.s3_endpoint_url = s3_endpoint_url
        self._known: dict[str, SourceFingerprint] = {}

    def options(self, url: str) -> dict[str, Any]:
        return storage_options(url, self.s3_endpoint_url)

    def fingerprints(self, urls: list[str]) -> dict[str, SourceFingerprint]:
        self._known.update(fingerprint_sources([url for url in urls if url not in self._known], self.options))
        return {url: self._known[url] for url in urls}


def probe_durations(urls: list[str], options: Callable[[str], dict[str, Any]]) -> dict[str, float | None]:
    """Each video's duration from its own header, in parallel; None for one that cannot be read now (missing,
    corrupt, unreachable): its windows go on to be cut, and the cut records the same reason as for any source."""

    def one(url: str) -> float | None:
        try:
            return video_duration(url, options(url))
        except Exception:  # noqa: BLE001  the cut of its windows says what is wrong with this video
            return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(urls, pool.map(one, urls)))


class DurationStore:
    """Durations read from videos' headers, one small file per source fingerprint, in the store (outside every out):
    a re-run, an experiment or a longer windows file reads no header twice (a remote video's header is a few ranged
    GETs; its fingerprint, which prepare asks for anyway, one HEAD)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, fingerprint: str) -> Path:
        return self.root / f"{hashlib.sha256(fingerprint.encode()).hexdigest()}.json"

    def get(self, fingerprint: str) -> float | None:
        kept = read_json_file(self._path(fingerprint))
        return float(kept["duration_s"]) if isinstance(kept, dict) and isinstance(kept.get("duration_s"), float) else None

    def put(self, fingerprint: str, seconds: float) -> None:
        write_atomic(self._path(fingerprint), json.dumps({"source": fingerprint, "duration_s": seconds}).encode())


def known_durations(urls: list[str], sources: SourceLookup, store: DurationStore) -> dict[str, float | None]:
    """Each video's duration: kept from an earlier read of the same content, else read from its header now (and
    kept). None for a video that cannot be reached or read now (its windows' cut says why; nothing is kept)."""
    fingerprints = sources.fingerprints(urls)
    kept = {url: store.get(fp.fingerprint) for url, fp in fingerprints.items() if fp.fingerprint is not None}
    unread = [url for url, seconds in kept.items() if seconds is None]
    read = probe_durations(unread, sources.options)
    for url, seconds in read.items():
        if seconds is not None and math.isfinite(seconds):
            store.put(fingerprints[url].fingerprint or "", seconds)
    return {url: read.get(url, kept.get(url)) for url in urls}
