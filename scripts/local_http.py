"""What the scripts' local HTTP servers (test-upstream.py, demo-gate.py) share.

Serving: --host/--port/--port-file, a free port with --port 0, the port file written once
the server listens (renamed into place, so a reader never sees a half-written file), and
a clean stop on SIGINT or SIGTERM. Answering: JSON, OpenAI's error shape, and chunked
transfer framing written as it goes (what streams SSE).

Imported by those scripts from their own folder (Python puts a script's folder first on
sys.path), so they run by path from any working directory. Python standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # As OpenAI's servers (and Go's, Cloudflare's) do: each write goes out at once.
        # With Nagle on, a head and a body written apart wait out the client's delayed
        # ACK: 40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _openai_error(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})

    def _chunk(self, data: bytes) -> None:
        """One chunk of a `transfer-encoding: chunked` body, sent now."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")


def serve(handler: type[BaseHTTPRequestHandler], args: argparse.Namespace, banner: Callable[[int], str]) -> int:
    """Serves until SIGINT or SIGTERM; `banner(port)` goes to stderr once listening."""
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    port = server.server_address[1]

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        # Renamed into place: a reader never sees a half-written file.
        os.replace(args.port_file + ".tmp", args.port_file)
    print(banner(port), file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    return 0
