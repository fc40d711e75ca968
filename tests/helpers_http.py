"""A tiny local HTTP file server for download tests (Range support, scripted connection cuts).

Use as::

    with LocalFileServer(root_dir) as srv:
        srv.cut_plan["/training.zip"] = [1000]   # 1st request: send 1000 body bytes, then hang up
        url = srv.url("training.zip")
        ...
        srv.requests  # [(path, {header: value}), ...]

Also provides the ``file_server`` pytest fixture (server on 127.0.0.1, ephemeral port, shut
down in the fixture finalizer).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.0"  # one request per connection: a cut is a closed socket

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        owner = self.server.owner
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        with owner.lock:
            owner.requests.append((path, dict(self.headers.items())))
            cuts = owner.cut_plan.get(path)
            cut = cuts.pop(0) if cuts else None
            status_override = owner.status_plan.get(path)
            status = status_override.pop(0) if status_override else None
            ignore_range = path in owner.ignore_range
        if status is not None:
            self.send_error(status)
            return
        file = (owner.root / path.lstrip("/")).resolve()
        if owner.root not in file.parents or not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        total = len(data)
        start = 0
        rng = self.headers.get("Range")
        m = re.match(r"^bytes=(\d+)-$", rng.strip()) if rng and not ignore_range else None
        if m:
            start = int(m.group(1))
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))  # full length, even when cutting
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "LocalFileServer"


class LocalFileServer:
    """Serves files under ``root`` on 127.0.0.1 (ephemeral port) from a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: path -> list of byte counts: the n-th request to path sends only that many body bytes
        self.cut_plan: dict[str, list[int]] = {}
        #: path -> list of HTTP status codes answered (as errors) to the next requests
        self.status_plan: dict[str, list[int]] = {}
        #: paths for which Range headers are ignored (always 200 with the full body)
        self.ignore_range: set[str] = set()
        self.lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def url(self, rel: str) -> str:
        return self.base_url + urllib.parse.quote(rel)

    def requests_for(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h in self.requests if p == path]

    def start(self) -> "LocalFileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LocalFileServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def file_server(tmp_path: Path):
    """A running :class:`LocalFileServer` serving ``tmp_path / "www"``; stopped afterwards."""
    root = tmp_path / "www"
    root.mkdir()
    srv = LocalFileServer(root).start()
    try:
        yield srv
    finally:
        srv.stop()
