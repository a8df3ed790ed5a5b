"""The floor of `site-agent pilot`: a minimal Python wrapper doing the same per-rank duties
and nothing else. A benchmark fixture, not product code: run it under ``python -I -S``.

Duties, as the product's: subreaper; JSON report written atomically when starting, when the
payload runs (rename only) and at the end (write + fsync + rename); payload in its own process
group; SIGTERM/SIGINT/SIGHUP/SIGUSR1 forwarded to that group; leftovers swept through
/proc/<pid>/task/*/children; the payload's exit code (128+N after a signal).

Usage: python -I -S pilot_floor.py REPORT -- CMD...
"""

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time


def write(path, data, durable):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def children(pid):
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return found + [g for c in found for g in children(c)]


def main():
    report, cmd = sys.argv[1], sys.argv[3:]
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    data = {"state": "starting", "started": time.time(), "argv": cmd}
    write(report, data, False)
    proc = subprocess.Popen(cmd, process_group=0)

    def forward(signum, _frame):
        os.killpg(proc.pid, signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(s, forward)
    data.update(state="running", payload_pid=proc.pid)
    write(report, data, False)
    rc = proc.wait()
    for pid in children(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    code = 128 - rc if rc < 0 else rc
    data.update(state="done", exit_code=code, finished=time.time())
    write(report, data, True)
    sys.exit(code)


main()
