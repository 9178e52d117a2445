"""Live dashboard: a local web page showing the learner while it learns.

:class:`Dashboard` is a sink that keeps the latest state (input frame,
predicted and true class, output counts, running accuracy, events/s, feedback
angle, evaluations) and serves it with the standard library's HTTP server in a
daemon thread, bound to 127.0.0.1 only:

- ``GET /``            the page (``sinks/static/dashboard.html``: one HTML file, no external assets)
- ``GET /state.json``  the current state; the page polls it every 250 ms
- ``POST /label``      ``{"label": k}``: the label buttons (and keys 0-9) send a ``label`` control
  to the learner's control address and return its answer (JSON)

The input frame (attached by the learner stage to a few predictions per second),
the predicted and the true class shown are those of the same sample. Running
accuracy and events/s are computed here from the prediction records, so
they move with every sample even when metrics records come rarely:
accuracy = correct / labelled over the current phase, events/s = input events
of the predictions in the last ``rate_window_s`` seconds divided by that span.

The accuracy plot keeps two things apart: ``online`` = [trained samples, accuracy of the
last ``ONLINE_WINDOW`` labelled train/live predictions, each made before training on that
sample], and ``tests`` = [trained samples, test-split accuracy] from eval records.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from http import HTTPStatus
from pathlib import Path

from biograd.core.errors import BioGradError
from biograd.core.records import check_record, to_json
from biograd.sinks.http_guard import GuardedHandler, GuardedServer

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("static") / "dashboard.html"
HISTORY_POINTS = 600
ONLINE_WINDOW = 100


class Dashboard:
    """Sink serving the live dashboard on ``http://127.0.0.1:<port>/`` (port 0 = any free port)."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        rate_window_s: float = 2.0,
        clock=time.monotonic,
        control: str = "",
        keys: str = "",
    ):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise BioGradError(f"dashboard host {host!r}: the dashboard serves on loopback only")
        if not PAGE.exists():
            raise BioGradError(f"dashboard page {PAGE} is missing from the installation")
        self._page = PAGE.read_bytes()
        self._lock = threading.Lock()
        self._clock = clock
        self._rate_window_s = rate_window_s
        self._recent = collections.deque()  # (clock, events) of recent predictions
        self._control, self._keys = control, keys
        self._online = collections.deque(maxlen=ONLINE_WINDOW)  # correct? of recent labelled train/live
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
            "online": [],
            "tests": [],
            "teach": bool(control),
            "answer": None,
            "updated": None,
        }
        try:
            self._server = GuardedServer((host, port), self._handler_class())
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
                if record.get("phase") in ("train", "live"):
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
                if record["accuracy"] is not None:
                    s["tests"].append([s["samples"], round(record["accuracy"], 4), record.get("epoch")])
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
        labelled = record.get("label") is not None
        if labelled and phase in ("train", "live"):  # what the learner trained on
            s["samples"] += 1
            self._online.append(bool(record.get("correct")))
            s["online"].append([s["samples"], round(sum(self._online) / len(self._online), 4)])
            if len(s["online"]) > HISTORY_POINTS:  # keep every other point: the whole run, bounded
                s["online"] = s["online"][::2]
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

    def send_label(self, label: int) -> dict:
        """Send a ``label`` control to the learner (a button press); its answer."""
        if not self._control:
            raise BioGradError("this dashboard has no learner control address to send labels to")
        from biograd.core.transport import send_control

        answers = send_control(self._control, "label", label, keys=self._keys, timeout_s=3.0)
        with self._lock:
            self._state["answer"] = answers[-1].get("message")
            self._state["version"] += 1
        return answers[-1]

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

        class Handler(GuardedHandler):
            server_version = "biograd-dashboard"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                if not self.host_ok():  # DNS rebinding: /state.json holds paths
                    return
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(dashboard._page, "text/html; charset=utf-8")
                elif path == "/state.json":
                    with dashboard._lock:
                        body = to_json(dashboard._state).encode("utf-8")
                    self._send(body, "application/json")
                else:
                    self.send_error(HTTPStatus.NOT_FOUND, "only / and /state.json are served")

            def do_POST(self):  # noqa: N802
                if self.path.split("?", 1)[0] != "/label":
                    self.send_error(HTTPStatus.NOT_FOUND, "only /label takes a POST")
                    return
                origin = self.headers.get("Origin")
                if origin is not None and origin.split("://", 1)[-1] != self.headers.get("Host"):
                    self.send_error(HTTPStatus.FORBIDDEN, "labels are taken from this dashboard's own page only")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    if not 0 < length <= 256:
                        raise ValueError("body must be a small JSON object")
                    label = json.loads(self.rfile.read(length))["label"]
                    if isinstance(label, bool) or not isinstance(label, int):
                        raise ValueError("label must be an integer")
                except (ValueError, KeyError, TypeError) as exc:
                    self.send_error(HTTPStatus.BAD_REQUEST, f'expected {{"label": k}}: {exc}')
                    return
                try:
                    answer = dashboard.send_label(label)
                except BioGradError as exc:
                    self._send(json.dumps({"error": str(exc)}).encode(), "application/json", HTTPStatus.BAD_GATEWAY)
                    return
                self._send(json.dumps(answer).encode(), "application/json")

            def _send(self, body: bytes, content_type: str, status=HTTPStatus.OK):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                log.debug("dashboard %s - %s", self.address_string(), fmt % args)

        return Handler
