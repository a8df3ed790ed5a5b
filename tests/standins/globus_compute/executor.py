"""Strict stand-in for ``globus_compute_sdk.Executor``: the Globus cloud cannot be reached here.

It does what the cloud and the endpoint would do with a submission, with the endpoint's own
code where it can: finds the registered endpoint by its id (``endpoint.json`` under the Globus
Compute directory), renders and loads the user endpoint for ``user_endpoint_config`` with
globus-compute-endpoint's schema check, template and config loader, then runs each task as a
worker on a compute node would: in a fresh ``bash`` that first runs the rendered
``worker_init``, under a PBS-like job environment (``PBS_NODEFILE``). Anything it was not built
for (another keyword, a non-callable, an unknown endpoint id) fails loudly.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import subprocess
import tempfile
import uuid
from pathlib import Path

import dill

CHILD = (
    "import dill, sys; fn, args = dill.load(sys.stdin.buffer); "
    "dill.dump(fn(*args), sys.stdout.buffer)"
)


class StandinExecutor:
    submitted: list[tuple[str, tuple]] = []  # (function name, args) of every instance

    def __init__(self, *args, **kwargs):
        # exactly what siteagent.harvester.backends.GlobusBackend passes the SDK's Executor
        if args or set(kwargs) != {"endpoint_id", "client", "user_endpoint_config", "batch_size"}:
            raise TypeError(f"stand-in Executor: unexpected arguments {args} {sorted(kwargs)}")
        if not isinstance(kwargs["client"], StandinClient):
            raise TypeError("stand-in Executor: client must be the stand-in Client")
        if not (isinstance(kwargs["batch_size"], int) and kwargs["batch_size"] >= 1):
            raise ValueError(f"stand-in Executor: batch_size {kwargs['batch_size']!r}")
        endpoint_id = str(uuid.UUID(kwargs["endpoint_id"]))  # ValueError if not a UUID
        config = kwargs["user_endpoint_config"]
        if not isinstance(config, dict):
            raise TypeError("stand-in Executor: user_endpoint_config must be a dict")
        self.endpoint_dir = self._registered_endpoint(endpoint_id)

        from siteagent.endpoint.validate import validate_endpoint

        result = validate_endpoint(self.endpoint_dir, config)
        try:
            self.worker_init = result.config.engine.executor.provider.worker_init
        finally:
            result.config.engine.shutdown()
        self.workdir = Path(tempfile.mkdtemp(prefix="standin-job-"))
        nodefile = self.workdir / "nodefile"
        nodefile.write_text("".join(f"node{i}\n" for i in range(config.get("nodes", 1))))
        self.job_env = os.environ | {"PBS_NODEFILE": str(nodefile), "PBS_JOBID": "1.standin"}
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    @staticmethod
    def _registered_endpoint(endpoint_id: str) -> Path:
        from globus_compute_sdk.sdk.compute_dir import get_compute_dir

        for info in get_compute_dir().glob("*/endpoint.json"):
            if json.loads(info.read_text()).get("endpoint_id") == endpoint_id:
                return info.parent
        raise LookupError(f"stand-in Executor: no registered endpoint {endpoint_id}")

    def submit(self, fn, *args, **kwargs):
        if kwargs or not callable(fn):
            raise TypeError(f"stand-in Executor: submit({fn!r}, kwargs={kwargs}) not expected")
        type(self).submitted.append((getattr(fn, "__name__", type(fn).__name__), args))
        return self.pool.submit(self._run_on_worker, fn, args)

    def _run_on_worker(self, fn, args):
        sandbox = self.workdir / f"task-{uuid.uuid4().hex[:8]}"
        sandbox.mkdir()
        script = f"{self.worker_init}\nexec python -c {shlex.quote(CHILD)}\n"
        r = subprocess.run(
            ["bash", "-c", script],
            input=dill.dumps((fn, args)),
            capture_output=True,
            cwd=sandbox,
            env=self.job_env | {"GC_TASK_SANDBOX_DIR": str(sandbox)},
            timeout=120,
        )
        if r.returncode != 0:
            raise RuntimeError(f"stand-in worker failed: {r.stderr.decode()[-2000:]}")
        return dill.loads(r.stdout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class StandinClient:
    """Stands in for ``globus_compute_sdk.Client``; the smoke test calls none of its methods."""

    def __getattr__(self, name):
        raise AttributeError(f"stand-in Client: {name} not expected")
