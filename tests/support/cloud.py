"""Real local stand-ins for the clouds, on 127.0.0.1 only: S3 (moto server) and GCS (gcp-storage-emulator)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class CountingMotoServer(ThreadedMotoServer):
    """moto's S3 server that also counts the object bytes it sends (how much a cut really fetched) and logs every
    request's method and path (which objects were touched at all)."""

    def __init__(self, port: int):
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.bytes_sent = 0
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def touched(self, bucket: str, key: str) -> list[str]:
        """The methods of the requests that named this object (HEAD, GET, ...), in order."""
        with self._lock:
            return [method for method, path in self.requests if path == f"/{bucket}/{key}"]

    def reset_count(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.requests.clear()

    def _counting(self, app):
        def middleware(environ, start_response):
            with self._lock:
                self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
            body = app(environ, start_response)
            if environ["REQUEST_METHOD"] != "GET":
                return body
            chunks = list(body)
            with self._lock:
                self.bytes_sent += sum(len(c) for c in chunks)
            return chunks
        return middleware

    def _server_entry(self) -> None:  # moto's own entry, with the counting middleware around the app
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in test output
        app = self._counting(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True)
        self._server_ready_event.set()
        self._server.serve_forever()


@contextmanager
def env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def moto_s3() -> Iterator[tuple[CountingMotoServer, str]]:
    """A moto S3 server; yields it and its endpoint URL, with fake AWS credentials in the environment."""
    port = free_port()
    server = CountingMotoServer(port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its state per process, not per server: start from an empty S3 whatever an earlier server held.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    try:
        with env(**FAKE_AWS):
            yield server, endpoint
    finally:
        server.stop()


@contextmanager
def gcs_emulator(default_bucket: str) -> Iterator[str]:
    """gcp-storage-emulator in memory; yields its URL, with STORAGE_EMULATOR_HOST set."""
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    process = subprocess.Popen([exe if os.path.exists(exe) else "gcp-storage-emulator", "start", "--host=127.0.0.1",
                                f"--port={port}", "--in-memory", f"--default-bucket={default_bucket}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port)
        # gcsfs otherwise stalls 60 s per operation on a gRPC/TLS probe against the emulator.
        with env(STORAGE_EMULATOR_HOST=url, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false"):
            yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
