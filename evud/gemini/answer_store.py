"""The answer store: every final Gemini answer, one JSON file per request key, outside every DVC out.

It only grows. An answer is written whole or not at all (a temp file renamed over it; one PUT on S3/GCS),
so a reader never sees half an entry and two runs writing the same key at once are safe (both hold the
same paid answer). Failed requests are never stored: they can never shadow an answer, and the next run
asks them again. The location is `evud.core.store.answer_store_url()`: a local directory shared by the
workspace and its queued and temp experiments, or an `s3://` / `gs://` prefix shared by a team.

On a local store, a run claims each key it is about to ask (a flock the kernel releases when its process dies), so
two experiments running at once (`dvc queue start -j 2`) do not both pay for the same answer: the second
waits for the first's answer. Claims of a dead process are free at once. Remote stores have no claims:
two runs on different machines asking the same key at the same instant can both pay for it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import ValidationError

from evud.core.errors import UserError
from evud.core.jsonl import dumps, read_jsonl
from evud.core.records import AnswerEntry
from evud.core.store import Claims, store_root, write_atomic

_KEY_CHARS = 64  # sha256 hex
STORE_WHAT_TO_DO = ("free space or fix its permissions or network, or point EVUD_ANSWER_STORE at a store that works, then "
               "run again")


class AnswerStoreError(UserError):
    """The answer store cannot be read or written: nothing more is asked (an answer that cannot be kept is never
    paid for); the message names the store and what to do."""


def describe_os_error(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return f"{type(err).__name__}: {err}"


class AnswerStore:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        # A fresh filesystem object: fsspec's instance cache would keep the endpoint of an earlier store.
        self.fs, self.root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        self._host = socket.gethostname()
        # Remote stores have no claims: two machines asking the same key at the same instant can both pay.
        self.claims = Claims(Path(self.root) / "claims") if self.local else None

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    # --- reading -------------------------------------------------------------------------------------

    def keys(self) -> set[str]:
        """Every key with a stored answer: one listing (a few requests for 10,000s of answers on S3 or GCS)."""
        try:
            paths = self.fs.find(self.root)
        except FileNotFoundError:
            return set()
        except Exception as err:  # noqa: BLE001  an unreachable bucket, refused credentials: say which store
            raise AnswerStoreError(f"the answer store {self.url} cannot be read ({describe_os_error(err)}): "
                                   f"nothing was asked; {STORE_WHAT_TO_DO}") from None
        names = (path.rsplit("/", 1)[-1] for path in paths)
        return {n[:-5] for n in names if n.endswith(".json") and len(n) == _KEY_CHARS + 5}

    def get(self, key: str) -> AnswerEntry | None:
        try:
            data = self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None
        try:
            entry = AnswerEntry.model_validate_json(data)
        except ValidationError as err:  # not ours, or written by an incompatible version: ask again
            print(f"warning: answer store {self.url}: {key}.json is unreadable ({err.error_count()} error(s)); "
                  "ignoring it", file=sys.stderr)
            return None
        if entry.request_key != key:  # copied or renamed: never serve one request's answer to another
            print(f"warning: answer store {self.url}: {key}.json holds the answer of request "
                  f"{entry.request_key[:12]}..., not its own; ignoring it (the request is asked again)", file=sys.stderr)
            return None
        return entry

    def get_many(self, keys: Iterable[str], threads: int = 16) -> dict[str, AnswerEntry]:
        """The stored answers among these keys (fetched in parallel: remote stores answer in round trips)."""
        wanted = sorted(set(keys) & self.keys())
        with ThreadPoolExecutor(max_workers=threads) as pool:
            found = dict(zip(wanted, pool.map(self.get, wanted)))
        return {key: entry for key, entry in found.items() if entry is not None}

    # --- writing -------------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Write and remove a probe before anything is paid for: a read-only or unreachable store stops the run
        here, naming itself, instead of after the first answer it could not keep."""
        probe = f"{self.root}/.probe-{self._host}-{os.getpid()}"
        try:
            self.write_object(probe, b"probe\n")
            self.fs.rm_file(probe)
        except Exception as err:  # noqa: BLE001  any store error: nothing is asked
            raise AnswerStoreError(f"the answer store {self.url} cannot be written ({describe_os_error(err)}): "
                                   f"nothing was asked; {STORE_WHAT_TO_DO}") from None

    def put(self, entry: AnswerEntry) -> None:
        """Keep a final answer; durable when this returns."""
        if not entry.is_final:
            raise ValueError(f"request {entry.request_key}: failed requests are not stored")
        self.write_object(self._path(entry.request_key), (dumps(entry) + "\n").encode())

    def write_object(self, path: str, data: bytes) -> None:
        """Write one file of the store whole or not at all."""
        if self.local:
            write_atomic(Path(path), data)
        else:
            self.fs.pipe_file(path, data)  # one PUT: the object appears whole

    # --- claims (local stores) ---------------------------------------------------------------------------

    def claim(self, key: str) -> bool:
        """Take the right to ask this key now; False while another live run asks it."""
        return self.claims.claim(key) if self.claims is not None else True

    def claimed_elsewhere(self, key: str) -> bool:
        return self.claims is not None and self.claims.claimed_elsewhere(key)

    def release(self, key: str) -> None:
        if self.claims is not None:
            self.claims.release(key)


# --- answers the store could not keep ------------------------------------------------------------------------
#
# When the store fails in the middle of a run (a full disk, a network gone), the answers already received are paid
# for: they go to a rescue file in the first place that takes them, and the next run puts them into the store.


def rescue_dirs() -> list[Path]:
    """Where answers the store could not keep are saved, in order: the local store, then the system's temp dir."""
    return [store_root() / "unsaved-answers", Path(tempfile.gettempdir()) / "evud-unsaved-answers"]


def _store_tag(store: AnswerStore) -> str:
    return hashlib.sha256(store.url.encode()).hexdigest()[:16]


def rescue_answers(store: AnswerStore, entries: list[AnswerEntry]) -> tuple[Path | None, list[str]]:
    """Save entries in the first rescue place that takes them: (the file, or None, and why each place failed)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    data = "".join(dumps(entry) + "\n" for entry in entries).encode()
    problems = []
    for folder in rescue_dirs():
        path = folder / f"{_store_tag(store)}-{stamp}-{os.getpid()}.jsonl"
        try:
            write_atomic(path, data)
            return path, problems
        except OSError as err:
            problems.append(f"{folder}: {describe_os_error(err)}")
    return None, problems


def import_rescued(store: AnswerStore) -> int:
    """Put into the store the answers an earlier run rescued for it; a file goes once all its answers are in."""
    imported = 0
    for folder in rescue_dirs():
        for path in sorted(folder.glob(f"{_store_tag(store)}-*.jsonl")) if folder.is_dir() else []:
            try:
                for record in read_jsonl(path):
                    store.put(AnswerEntry.model_validate(record))
                    imported += 1
                path.unlink()
            except (OSError, ValidationError, AnswerStoreError):
                continue  # the store still fails: the file stays for the next run
    return imported
