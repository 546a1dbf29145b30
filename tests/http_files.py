"""A local HTTP server for download tests: serves files by path, honours Range requests, records them."""

from __future__ import annotations

import http.server
import threading


class FileServer:
    """Serve ``files`` (path -> bytes) on 127.0.0.1; ``url(name)`` is a file's address.

    ``requests`` records ``(path, Range header or None)``; ``bytes_sent`` counts the body bytes sent.
    With ``honour_range=False`` the server ignores Range and sends the whole file (a server without
    resume support); ``content_type`` is the Content-Type of every answer.
    """

    def __init__(self, files: dict[str, bytes], *, honour_range: bool = True,
                 content_type: str = "application/octet-stream"):
        self.files = files
        self.honour_range = honour_range
        self.requests: list[tuple[str, str | None]] = []
        self.bytes_sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                wanted = self.headers.get("Range")
                server.requests.append((self.path, wanted))
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = 0
                if wanted and server.honour_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])
                server.bytes_sent += len(body) - start

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, name: str) -> str:
        return self.base + name

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
