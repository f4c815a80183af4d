"""The local HTTP source server with a gate: while it is closed, every GET (a read of video bytes) waits, so a test
can hold a cluster's tasks in the middle of their work, count them, and then let them go. HEADs (a source's size
and version, read by the stage itself) always pass."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.support.http_source import SourceServer

_WAIT_S = 120.0  # a test waiting longer than this for held reads fails instead of hanging


class GatedSourceServer(SourceServer):
    def __init__(self, directory: Path):
        super().__init__(directory)
        self._open = True
        self._held = 0
        self._changed = threading.Condition()

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        if body:
            with self._changed:
                if not self._open:
                    self._held += 1
                    self._changed.notify_all()
                    self._changed.wait_for(lambda: self._open)
                    self._held -= 1
        super().answer(handler, body)

    def close_gate(self) -> None:
        with self._changed:
            self._open = False

    def open_gate(self) -> None:
        with self._changed:
            self._open = True
            self._changed.notify_all()

    def wait_held(self, count: int) -> None:
        """Until `count` reads wait at the closed gate (each from a task in the middle of its work)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held >= count, timeout=_WAIT_S):
                raise AssertionError(f"{self._held} read(s) held after {_WAIT_S:.0f} s, expected {count}")


@contextmanager
def gated_source_server(directory: Path) -> Iterator[GatedSourceServer]:
    server = GatedSourceServer(directory)
    thread = threading.Thread(target=server._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.open_gate()
        server._http.shutdown()
        server._http.server_close()
