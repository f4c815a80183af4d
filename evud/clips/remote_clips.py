"""A clip store every node reaches without a shared file system: an `s3://bucket/prefix` (EVUD_CLIP_STORE).

Content-addressed by cut key and written once: a clip is put with `If-None-Match: *` (S3's conditional write), its
entry (checksums, span) after it, each refused if the key exists. Two nodes that cut the same clip at once store it
once (the cut is deterministic: the refused bytes were the same), and an entry is never there before its clip. A task
looks there first (a clip cut on any node, in any run, is never cut again), cuts what is missing into a scratch store
on its node (a scratch directory, removed after) and publishes it; the stage fetches what data/clips needs into its local store (EVUD_STORE), which stays
its cache: a clip already there is not fetched again. Credentials: each node's own standard chain (never shipped).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from evud.clips.clip_store import ClipStore, StoredClip
from evud.core.checksums import file_digests
from evud.core.errors import UserError

CLIP_STORE_VAR = "EVUD_CLIP_STORE"


class ClipStoreError(UserError):
    """EVUD_CLIP_STORE names something that is not an s3:// prefix."""


def remote_clip_store(endpoint_url: str | None) -> RemoteClips | None:
    """The remote clip store EVUD_CLIP_STORE names (s3://bucket/prefix), or None (the local or shared EVUD_STORE)."""
    url = os.environ.get(CLIP_STORE_VAR, "").strip().rstrip("/")
    if not url:
        return None
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket:
        raise ClipStoreError(f"prepare: {CLIP_STORE_VAR}={url} is not an s3://bucket/prefix: set an S3 prefix every "
                             "node can write, or unset it and put EVUD_STORE on a file system every node mounts.")
    return RemoteClips(bucket, prefix, endpoint_url)


@lru_cache(maxsize=4)
def _s3(endpoint_url: str | None) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


def _refused(err: Exception) -> bool:
    """S3's answer to a conditional put whose key exists (412), or to one racing another put of it (409)."""
    code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


@dataclass(frozen=True)
class RemoteClips:
    bucket: str
    prefix: str
    endpoint_url: str | None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, cut_key: str, suffix: str) -> str:
        return f"{self.prefix}/{cut_key[:2]}/{cut_key}{suffix}".lstrip("/")

    def entry(self, cut_key: str) -> StoredClip | None:
        """The stored clip's entry, or None when no node has published it."""
        s3 = _s3(self.endpoint_url)
        try:
            body = s3.get_object(Bucket=self.bucket, Key=self._key(cut_key, ".json"))["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return StoredClip.model_validate_json(body)

    def _put_once(self, key: str, body: Any) -> bool:
        """Put unless the key exists; False when S3 refused it (another put came first)."""
        from botocore.exceptions import ClientError

        try:
            _s3(self.endpoint_url).put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except ClientError as err:
            if _refused(err):
                return False
            raise

    def publish(self, clip: Path, entry: StoredClip) -> StoredClip:
        """Store a clip cut on this node, once; returns the entry the store holds (this one, or the first one's)."""
        entry = entry.model_copy(update={"has_file": True, "mtime_ns": None})
        with open(clip, "rb") as body:
            self._put_once(self._key(entry.cut_key, ".mp4"), body)
        # Refused when a node published the same clip first: its bytes are these (a deterministic cut), and its
        # entry, if not written yet, says the same.
        self._put_once(self._key(entry.cut_key, ".json"), entry.model_dump_json().encode())
        return self.entry(entry.cut_key) or entry

    def fetch_into(self, store: ClipStore, entry: StoredClip) -> StoredClip:
        """Download a published clip into a local store (checked against its entry's sha256); returns its entry."""
        partial = store.partial_file(entry.cut_key)
        partial.parent.mkdir(parents=True, exist_ok=True)
        try:
            _s3(self.endpoint_url).download_file(self.bucket, self._key(entry.cut_key, ".mp4"), str(partial))
            sha256 = file_digests(partial, with_md5=False)[0]
            if sha256 != entry.sha256:
                raise OSError(f"{self.url}: clip {entry.cut_key} holds bytes of sha256 {sha256}, its entry says "
                              f"{entry.sha256}: delete both objects and run again to cut it anew")
            os.replace(partial, store.clip_file(entry.cut_key))
        finally:
            partial.unlink(missing_ok=True)
        return store.commit(entry.model_copy(update={"has_file": True, "mtime_ns": None}))


def scratch_destination(dest: Any, scratch_dir: str) -> Any:
    """The task's Destination for cutting on its node: a scratch store there, no link, no upload (the stage does both
    once it has fetched the clip)."""
    return dataclasses.replace(dest, store_dir=scratch_dir, clips_dir=None, keep_local=True, bucket=None)
