"""A gate in front of the GCS emulator on 127.0.0.1: it forwards every request, except those about the buckets it
denies, which get Cloud Storage's 403 (the emulator itself checks no permission). Point STORAGE_EMULATOR_HOST at
`url` to use it."""

from __future__ import annotations

import http.client
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from tests.support.local_http import local_url, start_local_server, stop_local_server

_BUCKET = re.compile(r"^(?:/upload|/download)?/storage/v1/b/(?P<bucket>[^/?]+)")


def forbidden_json(bucket: str) -> bytes:
    message = (f"caller does not have storage.objects.list access to the Google Cloud Storage bucket. Permission "
               f"'storage.objects.list' denied on resource (or it may not exist). bucket={bucket}")
    return json.dumps({"error": {"code": 403, "message": message,
                                 "errors": [{"message": message, "domain": "global", "reason": "forbidden"}]}}).encode()


class GcsGate:
    def __init__(self, emulator_url: str, denied: set[str]):
        self.target = urlsplit(emulator_url)
        self.denied = denied
        self.refused = 0  # requests answered 403
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                match = _BUCKET.match(self.path)
                if match and unquote(match["bucket"]) in gate.denied:
                    gate.refused += 1
                    return self._reply(403, {"Content-Type": "application/json"}, forbidden_json(match["bucket"]))
                upstream = http.client.HTTPConnection(gate.target.hostname, gate.target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self._reply(answer.status, {k: v for k, v in answer.getheaders()
                                            if k.lower() not in ("transfer-encoding", "connection", "content-length")},
                            data)
                upstream.close()

            def _reply(self, code: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = start_local_server(Handler)
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return local_url(self._server)

    def stop(self) -> None:
        stop_local_server(self._server)
