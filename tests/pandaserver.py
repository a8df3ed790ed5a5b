"""A small PanDA server (and CRIC) stand-in on loopback for the real PanDA pilot (pilot3).

It answers what pilot3 asks at start-up and when it looks for work, in the shapes pilot3 parses
(read from its source: pilot/info/extinfo.py, pilot/info/queuedata.py, pilot/control/job.py):

- ``GET /cache/schedconfig/<queue>.all.json``: the queue's PanDA queuedata (one object)
- ``GET /cric/<queue>.json``: CRIC schedconfig, ``{queue: {...}}`` with CRIC key names
  (``nickname``, ``panda_resource``, ``atlas_site``, ``state``)
- ``GET /cric/ddmendpoints.json``: no storage endpoints
- ``POST /server/panda/getJob``: ``{"StatusCode": 20}`` (no job) or the next queued job
- any other ``POST /server/panda/...``: ``{"StatusCode": 0}``

Every request is recorded (method, path, form fields), so tests can check what the pilot sent.
``pilot_config()`` writes the pilot's own configuration file (its packaged default.cfg with the
CRIC and PanDA URLs pointed here), which pilot3 reads from ``$HARVESTER_PILOT_CONFIG``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

NO_JOBS = 20  # PanDA: "no jobs" status code


class PandaServer:
    def __init__(self, queue: str, jobs: list[dict] | None = None, state: str = "ACTIVE") -> None:
        self.queue = queue
        self.state = state
        # answered to GETs of absolute URLs, i.e. when this server is the HTTP proxy
        self.files: dict[str, bytes] = {}
        self.jobs = list(jobs or [])
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PandaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def calls(self, path_part: str) -> list[dict[str, str]]:
        with self._lock:
            return [form for _, path, form in self.requests if path_part in path]

    def queuedata(self) -> dict:
        return {
            "nickname": self.queue,
            "panda_resource": self.queue,
            "atlas_site": "SITEAGENT_TEST",
            "state": self.state,
            "status": "online",
            "maxtime": 3600,
            "corecount": 1,
            "catchall": "",
            "params": {},
            "acopytools": {},
            "astorages": {},
            "copytools": {},
            "container_type": "",
            "container_options": "",
        }

    def pilot_config(self, default_cfg: Path, out: Path) -> Path:
        """pilot3's default.cfg with every CRIC/PanDA URL pointed at this server."""
        text = default_cfg.read_text()
        for key, value in (
            ("queues_url", f"{self.url}/cric/{{pandaqueue}}.json"),
            ("storages_url", f"{self.url}/cric/ddmendpoints.json"),
            ("queuedata_url", f"{self.url}/cache/schedconfig/{{pandaqueue}}.all.json"),
            ("pandaserver", self.url),
            ("iddsserver", self.url),
        ):
            text, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text)
            assert n == 1, f"{key} not found once in {default_cfg}"
        out.write_text(text)
        return out

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, body: object, code: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, form: dict[str, str]) -> None:
                with server._lock:
                    server.requests.append((self.command, self.path, form))

            def do_GET(self) -> None:
                self._record({})
                q = server.queue
                if self.path.startswith("http://"):  # used as the site's HTTP proxy
                    body = server.files.get(self.path)
                    if body is None:
                        self._send({"error": f"no {self.path}"}, 404)
                        return
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path.endswith(f"/cache/schedconfig/{q}.all.json"):  # any prefix:
                    # a queue's --queuedata-url may name another server's cache
                    self._send(server.queuedata())
                elif self.path == f"/cric/{q}.json":
                    self._send({q: server.queuedata()})
                elif self.path == "/cric/ddmendpoints.json":
                    self._send({})
                else:
                    self._send({"error": f"unknown {self.path}"}, 404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode(errors="replace")
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                self._record(form)
                if not self.path.startswith("/server/panda/"):
                    self._send({"error": "unknown"}, 404)
                elif self.path.endswith("/getJob"):
                    with server._lock:
                        job = server.jobs.pop(0) if server.jobs else None
                    self._send({"StatusCode": 0, **job} if job else {"StatusCode": NO_JOBS})
                else:
                    self._send({"StatusCode": 0})

        return Handler
