"""A small real HTTP server on a loopback address, for URL-fetch, SSRF and callback tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class LocalServer:
    def __init__(self, host: str, audio: Path) -> None:
        self.audio = audio
        self.callbacks: list[dict[str, Any]] = []
        self.callback_failures = 1  # answer 500 this many times before accepting
        self.redirect_to = ""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _send(
                self,
                status: int,
                body: bytes = b"",
                content_type: str = "text/plain",
                extra: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/audio.wav" or self.path == "/stream":
                    self._send(200, server.audio.read_bytes(), "audio/wav")
                elif self.path == "/redirect":
                    self._send(302, extra={"Location": server.redirect_to})
                elif self.path == "/page":
                    self._send(200, b"<html></html>", "text/html")
                elif self.path == "/big.wav":
                    self._send(200, b"\0" * (3 * 1024 * 1024), "audio/wav")
                elif self.path == "/slow.wav":  # starts, then stalls longer than the download limit
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/wav")
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    self.wfile.write(b"RIFF")
                    self.wfile.flush()
                    time.sleep(3)
                elif self.path == "/broken.wav":
                    self._send(500, b"oops")
                else:
                    self._send(404, b"missing")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if server.callback_failures > 0:
                    server.callback_failures -= 1
                    self._send(500, b"try again")
                    return
                server.callbacks.append(json.loads(body))
                self._send(200, b"ok")

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
