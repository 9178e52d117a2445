"""Live dashboard: a local web page showing the learner while it learns.

:class:`Dashboard` is a sink that keeps the latest state (input frame,
predicted and true class, output counts, running accuracy, events/s, feedback
angle, evaluations) and serves it with the standard library's HTTP server in a
daemon thread, bound to 127.0.0.1 only:

- ``GET /``            the page (``sinks/static/dashboard.html``: one HTML file, no external assets)
- ``GET /state.json``  the current state; the page polls it every 250 ms

The input frame (attached by the learner stage to a few predictions per second),
the predicted and the true class shown are those of the same sample. Running
accuracy and events/s are computed here from the prediction records, so
they move with every sample even when metrics records come rarely:
accuracy = correct / labelled over the current phase, events/s = input events
of the predictions in the last ``rate_window_s`` seconds divided by that span.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from biograd.core.errors import BioGradError
from biograd.core.records import check_record, to_json

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("static") / "dashboard.html"
HISTORY_POINTS = 600


class Dashboard:
    """Sink serving the live dashboard on ``http://127.0.0.1:<port>/`` (port 0 = any free port)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", rate_window_s: float = 2.0, clock=time.monotonic):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise BioGradError(f"dashboard host {host!r}: the dashboard serves on loopback only")
        if not PAGE.exists():
            raise BioGradError(f"dashboard page {PAGE} is missing from the installation")
        self._page = PAGE.read_bytes()
        self._lock = threading.Lock()
        self._clock = clock
        self._rate_window_s = rate_window_s
        self._recent = collections.deque()  # (clock, events) of recent predictions
        self._phase_counts: dict[str, list[int]] = {}
        self._frames_seen = False
        self._state = {
            "version": 0,
            "status": "waiting",
            "phase": None,
            "samples": 0,
            "sample_id": None,
            "predicted": None,
            "label": None,
            "correct": None,
            "counts": None,
            "accuracy": None,
            "accuracy_phase": None,
            "labelled": 0,
            "events_per_s": None,
            "samples_per_s": None,
            "accuracy_running": None,
            "loss": None,
            "dropped": 0,
            "invalid": 0,
            "sleeps": 0,
            "angle_deg": None,
            "norm_ratio": None,
            "evals": {},
            "checkpoint": None,
            "frame": None,
            "frame_version": 0,
            "history": [],
            "updated": None,
        }
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler_class())
        except OSError as exc:
            raise BioGradError(
                f"dashboard: cannot listen on {host}:{port} ({exc}); set sinks.dashboard_port to a free port or 0"
            ) from None
        self._server.daemon_threads = True
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="biograd-dashboard", kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        log.info("dashboard on %s", self.url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # --- the sink -----------------------------------------------------------
    def handle(self, record: dict) -> None:
        kind = check_record(record)["type"]
        now = self._clock()
        with self._lock:
            s = self._state
            s["status"] = "running"
            if kind == "prediction":
                self._prediction(record, now)
            elif kind == "metrics":
                for key in ("samples_per_s", "accuracy_running", "loss", "dropped", "invalid", "sleeps"):
                    if record.get(key) is not None:
                        s[key] = record[key]
                if record.get("phase") == "train":
                    # A resumed run or a dashboard started mid-run: the learner's count wins.
                    s["samples"] = max(s["samples"], int(record["samples"]))
                if s["events_per_s"] is None and record.get("events_per_s") is not None:
                    s["events_per_s"] = record["events_per_s"]
            elif kind == "sleep":
                s["angle_deg"], s["norm_ratio"] = record["angle_deg"], record["norm_ratio"]
            elif kind == "eval":
                s["evals"][record["split"]] = {
                    "accuracy": record["accuracy"],
                    "samples": record["samples"],
                    "epoch": record.get("epoch"),
                }
            elif kind == "checkpoint":
                s["checkpoint"] = {"path": record["path"], "samples": record["samples"]}
            elif kind == "end":
                s["status"] = "ended"
            s["version"] += 1
            s["updated"] = time.time()

    def _prediction(self, record: dict, now: float) -> None:
        s = self._state
        phase = record["phase"]
        # Once frames flow (a few per second), the shown sample is the one whose frame is on
        # screen, so the picture, the predicted and the true class always belong together.
        if record.get("frame") or not self._frames_seen:
            for key in ("sample_id", "predicted", "label", "correct", "counts", "phase"):
                s[key] = record.get(key)
        if phase == "train":
            s["samples"] += 1
        tally = self._phase_counts.setdefault(phase, [0, 0])
        if record.get("label") is not None and record.get("predicted") is not None:
            tally[0] += int(record["predicted"] == record["label"])
            tally[1] += 1
        s["accuracy_phase"], s["labelled"] = phase, tally[1]
        s["accuracy"] = tally[0] / tally[1] if tally[1] else None
        self._recent.append((now, int(record.get("events") or 0)))
        while self._recent and now - self._recent[0][0] > self._rate_window_s:
            self._recent.popleft()
        span = now - self._recent[0][0] if len(self._recent) > 1 else 0.0
        if span > 0:
            # Events of the samples after the window's first one, over the time they took.
            s["events_per_s"] = sum(e for _, e in list(self._recent)[1:]) / span
        if record.get("frame"):
            self._frames_seen = True
            s["frame"] = record["frame"]
            s["frame_version"] += 1
        if s["accuracy"] is not None:
            s["history"].append([s["labelled"], round(s["accuracy"], 4), phase])
            if len(s["history"]) > HISTORY_POINTS:
                del s["history"][: len(s["history"]) - HISTORY_POINTS]

    def state(self) -> dict:
        """A copy of the served state (what ``/state.json`` returns)."""
        with self._lock:
            return json.loads(to_json(self._state))

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    # --- HTTP ---------------------------------------------------------------
    def _handler_class(self):
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "biograd-dashboard"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(dashboard._page, "text/html; charset=utf-8")
                elif path == "/state.json":
                    with dashboard._lock:
                        body = to_json(dashboard._state).encode("utf-8")
                    self._send(body, "application/json")
                else:
                    self.send_error(HTTPStatus.NOT_FOUND, "only / and /state.json are served")

            def _send(self, body: bytes, content_type: str):
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                log.debug("dashboard %s - %s", self.address_string(), fmt % args)

        return Handler
