"""The answer store: every final Gemini answer, one JSON file per request key, outside every DVC out.

It only grows. An answer is written whole or not at all (a temp file renamed over it; one PUT on S3/GCS),
so a reader never sees half an entry and two runs writing the same key at once are safe (both hold the
same paid answer). Failed requests are never stored: they can never shadow an answer, and the next run
asks them again. The location is `evud.core.store.answer_store_url()`: a local directory shared by the
workspace and its queued and temp experiments, or an `s3://` / `gs://` prefix shared by a team.

On a local store, a run claims each key it is about to ask (an O_EXCL file naming its process), so two
experiments running at once (`dvc queue start -j 2`) do not both pay for the same answer: the second
waits for the first's answer. Claims of a dead process are taken over. Remote stores have no claims:
two runs on different machines asking the same key at the same instant can both pay for it.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import ValidationError

from evud.core.jsonl import dumps
from evud.core.records import AnswerEntry
from evud.core.store import pid_alive, write_atomic

_KEY_CHARS = 64  # sha256 hex
_FOREIGN_CLAIM_TTL_S = 6 * 3600  # a claim from another host is trusted this long (its requests may retry for hours)


class AnswerStore:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        # A fresh filesystem object: fsspec's instance cache would keep the endpoint of an earlier store.
        self.fs, self.root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        self._host = socket.gethostname()

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    # --- reading -------------------------------------------------------------------------------------

    def keys(self) -> set[str]:
        """Every key with a stored answer: one listing (a few requests for 10,000s of answers on S3 or GCS)."""
        try:
            paths = self.fs.find(self.root)
        except FileNotFoundError:
            return set()
        names = (path.rsplit("/", 1)[-1] for path in paths)
        return {n[:-5] for n in names if n.endswith(".json") and len(n) == _KEY_CHARS + 5}

    def get(self, key: str) -> AnswerEntry | None:
        try:
            data = self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None
        try:
            return AnswerEntry.model_validate_json(data)
        except ValidationError as err:  # not ours, or written by an incompatible version: ask again
            print(f"warning: answer store {self.url}: {key}.json is unreadable ({err.error_count()} error(s)); "
                  "ignoring it", file=sys.stderr)
            return None

    def get_many(self, keys: Iterable[str], threads: int = 16) -> dict[str, AnswerEntry]:
        """The stored answers among these keys (fetched in parallel: remote stores answer in round trips)."""
        wanted = sorted(set(keys) & self.keys())
        with ThreadPoolExecutor(max_workers=threads) as pool:
            found = dict(zip(wanted, pool.map(self.get, wanted)))
        return {key: entry for key, entry in found.items() if entry is not None}

    # --- writing -------------------------------------------------------------------------------------

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

    def _claim_path(self, key: str) -> Path:
        return Path(self.root) / "claims" / f"{key}.claim"

    def _claim_is_live(self, path: Path) -> bool:
        try:
            pid_text, host, stamp = path.read_text().split()
        except (OSError, ValueError):
            return False  # gone, or torn by a kill between create and write: take it over
        if host == self._host:
            return int(pid_text) != os.getpid() and pid_alive(int(pid_text))
        return time.time() - float(stamp) < _FOREIGN_CLAIM_TTL_S

    def claim(self, key: str) -> bool:
        """Take the right to ask this key now; False while another live run asks it."""
        if not self.local:
            return True
        path = self._claim_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then linked into place: link() fails if the claim exists, and a reader never sees an
        # empty claim (which it would take for a torn one and take over).
        mine = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        mine.write_text(f"{os.getpid()} {self._host} {time.time():.0f}\n")
        try:
            for _ in range(2):
                try:
                    os.link(mine, path)
                    return True
                except FileExistsError:
                    if self._claim_is_live(path):
                        return False
                    path.unlink(missing_ok=True)  # its run died (kill -9): take it over
            return False
        finally:
            mine.unlink(missing_ok=True)

    def claimed_elsewhere(self, key: str) -> bool:
        return self.local and self._claim_is_live(self._claim_path(key))

    def release(self, key: str) -> None:
        if self.local:
            self._claim_path(key).unlink(missing_ok=True)
