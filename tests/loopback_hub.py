"""A loopback HTTP server that serves one payload at every path as a Hugging Face Hub LFS file
(the headers huggingface_hub reads), for the real download paths in the tests."""

from __future__ import annotations

import hashlib
import http.server
import threading


class LoopbackHub(http.server.ThreadingHTTPServer):
    """Serves `payload` on 127.0.0.1; honours Range requests (resumed transfers); `cut` truncates
    the next GET body. Counts GETs (`gets`), records request paths and Range headers."""

    def __init__(self, payload: bytes):
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.payload, self.sha = payload, hashlib.sha256(payload).hexdigest()
        self.cut, self.gets, self.paths, self.ranges = False, 0, [], []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def start(self) -> LoopbackHub:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


class _HubHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _headers(self, status: int = 200, length: int | None = None, content_range: str = ""):
        size = len(self.server.payload)
        self.send_response(status)
        self.send_header("Content-Length", str(size if length is None else length))
        if content_range:
            self.send_header("Content-Range", content_range)
        self.send_header("ETag", f'"{self.server.sha}"')
        self.send_header("X-Linked-Etag", f'"{self.server.sha}"')
        self.send_header("X-Linked-Size", str(size))
        self.send_header("X-Repo-Commit", "a" * 40)
        self.end_headers()

    def do_HEAD(self):
        self._headers()

    def do_GET(self):
        self.server.gets += 1
        self.server.paths.append(self.path)
        payload, start = self.server.payload, self.headers.get("Range", "")
        if start.startswith("bytes="):  # resumed transfer: the rest of the file
            self.server.ranges.append(start)
            offset = int(start[6:].split("-")[0])
            self._headers(206, len(payload) - offset, f"bytes {offset}-{len(payload) - 1}/{len(payload)}")
            self.wfile.write(payload[offset:])
            return
        self._headers()
        if self.server.cut:
            self.server.cut = False
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(payload)


def use_as_hub_endpoint(monkeypatch, server: LoopbackHub) -> None:
    """Point huggingface_hub at `server` and allow downloads for this test."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # conftest sets it for the suite
    # huggingface_hub reads HF_HUB_OFFLINE once, at import (another test may have imported it)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
