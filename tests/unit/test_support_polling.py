"""The test suite's own pollers leave nothing open behind them.

`wait_until` once kept a failed probe's exception: its traceback tied the poller's frame into a
cycle, so an HTTPError's connection (Prometheus answers 503 until it is ready) stayed open until
the garbage collector ran, and its "unclosed socket" warning failed whichever later test that
happened in.
"""

from __future__ import annotations

import gc
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from support.procs import wait_until


class _NotReady(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"not ready")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_ready_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _NotReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_probe_that_raised_http_errors_leaves_no_connection_open(not_ready_url: str) -> None:
    def ready() -> bool:
        with urllib.request.urlopen(not_ready_url, timeout=5) as response:
            return bool(response.status == 200)

    gc.collect()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(TimeoutError, match="HTTPError 503"):
            wait_until(ready, timeout=0.3, what="a server that never gets ready")
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []
