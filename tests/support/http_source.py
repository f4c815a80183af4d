"""A local HTTP server for source videos on 127.0.0.1, answering byte ranges as object stores and CDNs do, and any
status a test scripts per path (a 503 of a sick CDN, a 404, a 410) or no answer to its GETs at all; and a server that
accepts connections and never says a word."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class SourceServer:
    def __init__(self, directory: Path):
        self.directory = directory
        self.statuses: dict[str, int] = {}  # path (without the leading /) -> status to answer instead of the file
        self.stalled: set[str] = set()  # paths whose GETs are never answered (HEADs are): a CDN stuck mid-transfer
        self._closing = threading.Event()
        self.requests = 0
        self.body_bytes = 0  # bytes of video sent (HEADs send none)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # no line per request in test output
                pass

            def do_HEAD(self) -> None:
                server.answer(self, body=False)

            def do_GET(self) -> None:
                server.answer(self, body=True)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests += 1
        name = handler.path.lstrip("/")
        status = self.statuses.get(name)
        path = self.directory / name
        if body and name in self.stalled:
            self._closing.wait()  # until the server stops: the client must give up on its own
            return
        if status is None and not path.is_file():
            status = 404
        if status is not None:
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", ""))
        start, end = (int(match[1]), int(match[2] or len(data) - 1)) if match else (0, len(data) - 1)
        end = min(end, len(data) - 1)
        handler.send_response(206 if match else 200)
        if match:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        handler.send_header("Content-Length", str(end - start + 1))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if body:
            handler.wfile.write(data[start:end + 1])
            self.body_bytes += end + 1 - start


@contextmanager
def source_server(directory: Path) -> Iterator[SourceServer]:
    server = SourceServer(directory)
    thread = threading.Thread(target=server._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._closing.set()
        server._http.shutdown()
        server._http.server_close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A server on 127.0.0.1 that accepts every connection and never answers (a hung proxy or CDN); yields its base
    URL. The connections are held open until the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # the listener was closed: the block ended
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join()
        for connection in held:
            connection.close()
