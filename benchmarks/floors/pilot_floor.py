"""The floor of `site-agent pilot`: a minimal Python wrapper doing the same per-rank duties
and nothing else. A benchmark fixture, not product code: run it under ``python -I -S``.

Duties, as the product's: a JSON report written atomically when starting (first of all, so
a wrapper killed while starting leaves one), when the payload runs and at the end (write +
fsync + rename: the only durable one); subreaper; reports beside its own that are unfinished
and whose wrapper is gone marked lost (most are done: the state is near the top of each);
payload in its own process group, killed by the kernel when the wrapper dies
(PR_SET_PDEATHSIG, set in the child before exec; not started at all if the wrapper is gone
already); SIGTERM/SIGINT/SIGHUP/SIGUSR1 forwarded to that group; leftovers swept through
/proc/<pid>/task/*/children; the payload's exit code (128+N after a signal).
Three of these duties (the starting report first, lost reports, PR_SET_PDEATHSIG) came with
the hardening of issue #11, after issue #16 measured the first floor.

Usage: python -I -S pilot_floor.py REPORT_DIR -- CMD...
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


def mark_lost(directory, own):
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if not name.endswith(".json") or path == own:
            continue
        try:
            with open(path, "rb") as fh:
                if b'"state": "done"' in fh.read(1024):
                    continue
            with open(path) as fh:
                data = json.load(fh)
            if not os.path.exists(f"/proc/{data['pid']}"):
                write(path, dict(data, state="done", reason="lost"), False)
        except (OSError, ValueError, KeyError):
            pass


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
    directory, cmd = sys.argv[1], sys.argv[3:]
    report = os.path.join(directory, f"floor-{os.getpid()}.json")
    data = {"state": "starting", "pid": os.getpid(), "started": time.time(), "argv": cmd}
    write(report, data, False)
    libc = ctypes.CDLL(None)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    mark_lost(directory, report)
    wrapper = os.getpid()

    def die_with_parent():
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != wrapper:
            os._exit(64)

    proc = subprocess.Popen(cmd, process_group=0, preexec_fn=die_with_parent)

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
