"""Submit a job to the PanDA dev stack with panda-client, or ask for jobs' states.

Run with the server venv's Python (panda-client 2.2.0 and the server's JobSpec are there) and
the variables of ``panda-devstack.sh env`` set (PANDA_URL_SSL, X509_USER_PROXY, X509_CERT_DIR)::

    python panda_devstack_jobs.py submit --queue Q [--trf URL] [ARG...]   -> {"PandaID": N}
    python panda_devstack_jobs.py status ID...   -> {"ID": {"jobStatus":..., "pilotErrorCode":...}}

Output is one JSON line; errors are one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid

DEFAULT_TRF = "http://pandaserver-doma.cern.ch:25080/trf/user/devstack-hello.sh"
FIELDS = (
    "jobStatus",
    "computingSite",
    "pilotErrorCode",
    "pilotErrorDiag",
    "transExitCode",
    "exeErrorCode",
    "jobDispatcherErrorCode",
    "jobDispatcherErrorDiag",
    "taskBufferErrorDiag",
    "resource_type",
    "batchID",
)


def fail(msg: str) -> None:
    print(f"panda_devstack_jobs: {msg}", file=sys.stderr)
    sys.exit(2)


def submit(queue: str, trf: str, args: list[str], label: str, resource_type: str) -> dict:
    from pandaclient import Client
    from pandaserver.taskbuffer.JobSpec import JobSpec

    job = JobSpec()
    job.jobDefinitionID = 1
    job.jobName = f"devstack-{uuid.uuid4()}"
    job.transformation = trf
    job.jobParameters = " ".join(args)
    job.destinationDBlock = f"devstack.{job.jobName}"
    job.destinationSE = queue
    job.computingSite = queue
    job.prodSourceLabel = label
    job.currentPriority = 1000
    job.coreCount = 1 if resource_type.startswith("SCORE") else 2
    job.resource_type = resource_type
    job.AtlasRelease = ""
    job.homepackage = ""
    job.VO = "wlcg"
    job.cloud = "WORLD"
    job.maxDiskCount = 0
    status, out = Client.submitJobs([job])
    if status != 0 or not out:
        fail(f"submitJobs: status {status}: {out}")
    panda_id = out[0][0] if isinstance(out[0], list | tuple) else out[0]
    if not str(panda_id).isdigit():
        fail(f"submitJobs: no PanDA id in {out}")
    return {"PandaID": int(panda_id)}


def status(ids: list[int]) -> dict:
    from pandaclient import Client

    code, jobs = Client.getJobStatus(ids)
    if code != 0 or jobs is None:
        fail(f"getJobStatus: status {code}: {jobs}")
    return {
        str(i): ({f: getattr(j, f, None) for f in FIELDS} if j is not None else None)
        for i, j in zip(ids, jobs, strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit")
    s.add_argument("--queue", default=os.environ.get("PANDA_DEVSTACK_QUEUE"))
    s.add_argument("--trf", default=DEFAULT_TRF)
    s.add_argument("--label", default="managed", help="prodSourceLabel (pilot3 -j)")
    s.add_argument("--resource-type", default="SCORE")
    s.add_argument("args", nargs="*")
    t = sub.add_parser("status")
    t.add_argument("ids", nargs="+", type=int)

    a = parser.parse_args()
    for var in ("PANDA_URL_SSL", "X509_USER_PROXY"):
        if not os.environ.get(var):
            fail(f"{var}: not set (source the output of panda-devstack.sh env)")
    if a.cmd == "submit":
        if not a.queue:
            fail("--queue: no queue (or PANDA_DEVSTACK_QUEUE)")
        result = submit(a.queue, a.trf, a.args, a.label, a.resource_type)
    else:
        result = status(a.ids)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
