"""Uploading clips to Google Cloud Storage, for prepare (`gcs.bucket`) and batch mode alike: skip a blob that
already holds the same bytes, upload under a generation precondition, verify the MD5 of what was sent.

Credentials come from Google's standard chain (ADC) unless the caller passes its own client;
STORAGE_EMULATOR_HOST points the client at an emulator. One default client per process, made on first use
(clients are not fork-safe to share).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


class UploadError(Exception):
    """An upload failed or did not verify; the message says which blob and why."""


@lru_cache(maxsize=1)
def storage_client() -> Any:
    # Imported here: runs without a bucket (the sample, benchmarks) never pay for loading the client.
    from google.cloud import storage

    return storage.Client()


def blob_name(prefix: str, clip_path: str) -> str:
    return f"{prefix.strip('/')}/{clip_path}" if prefix.strip("/") else clip_path


def blob_matches(bucket: str, name: str, md5_b64: str, client: Any = None) -> bool:
    """Whether the blob exists with exactly these bytes (one metadata request)."""
    from google.api_core import exceptions as gexc
    from google.cloud.storage.retry import DEFAULT_RETRY

    try:
        existing = (client or storage_client()).bucket(bucket).get_blob(name, retry=DEFAULT_RETRY)
    except gexc.GoogleAPIError as err:
        raise UploadError(f"upload_failed: gs://{bucket}/{name}: cannot check the blob: {err}") from None
    return existing is not None and existing.md5_hash == md5_b64


def upload_clip(bucket: str, name: str, local_path: str, md5_b64: str, client: Any = None) -> tuple[str, bool]:
    """Upload unless a blob with the same MD5 exists; returns (gs:// URI, whether bytes were sent)."""
    from google.api_core import exceptions as gexc
    from google.cloud.storage.retry import DEFAULT_RETRY

    uri = f"gs://{bucket}/{name}"
    target = (client or storage_client()).bucket(bucket)
    try:
        existing = target.get_blob(name, retry=DEFAULT_RETRY)  # one metadata request; None if absent
        if existing is not None and existing.md5_hash == md5_b64:
            return uri, False
        # Generation preconditions make the upload idempotent, so the client retries it on 429/5xx.
        generation = existing.generation if existing is not None else 0
        blob = target.blob(name)
        blob.upload_from_filename(local_path, content_type="video/mp4", if_generation_match=generation,
                                  checksum="md5", retry=DEFAULT_RETRY)
        blob.reload(retry=DEFAULT_RETRY)
    except gexc.GoogleAPIError as err:
        raise UploadError(f"upload_failed: {uri}: {err}") from None
    if blob.md5_hash != md5_b64:
        raise UploadError(f"upload_unverified: {uri}: md5 {blob.md5_hash} != local {md5_b64}")
    return uri, True
