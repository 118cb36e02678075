"""A local HTTP server that serves calendars (127.0.0.1, which the tests allow by a setting):
each path's body, ETag and Last-Modified (answering a matching conditional GET with 304), and on
request slow, oversized, redirecting or failing answers."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    delay: float = 0.0  # seconds before the answer
    location: str | None = None  # a redirect
    chunked: bool = False  # no Content-Length: the body streamed in pieces
    hits: list[dict] = field(default_factory=list)  # each request's headers

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


class CalendarServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                route = server.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                route.hits.append({k.lower(): v for k, v in self.headers.items()})
                if route.delay:
                    time.sleep(route.delay)
                if route.location:
                    self.send_response(302)
                    self.send_header("location", route.location)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if route.status == 200 and self.headers.get("if-none-match") == route.etag:
                    self.send_response(304)
                    self.send_header("etag", route.etag)
                    self.end_headers()
                    return
                self.send_response(route.status)
                self.send_header("content-type", "text/calendar; charset=utf-8")
                self.send_header("etag", route.etag)
                if route.chunked:
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(route.body), 1000):
                        piece = route.body[i : i + 1000]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("content-length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client that gave up (the size cap)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, path: str, **values) -> str:
        """Serve `path` (replacing what it served); its full URL."""
        self.routes[path] = Route(**values)
        return self.base_url + path

    def start(self) -> CalendarServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
