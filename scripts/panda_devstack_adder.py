"""The PanDA server's Adder for the dev stack: finishes jobs whose pilot reported them.

A pilot's final update leaves a job ``holding`` with a job output report; in production the
``add_main`` daemon of panda_daemon runs ``AdderGen`` on each report, which makes the job
``finished`` or ``failed`` and archives it. ``add_main`` itself runs 50 rounds of 10 processes
with a one-minute grace period; this loop runs the same ``AdderGen`` on each new report, one at a
time, every ``--interval`` seconds, which is all a loopback stack with a few jobs needs.

Run with the server venv's Python and PANDA_HOME set (``panda-devstack.sh up`` starts it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback

LOCK_MINUTES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0)
    a = parser.parse_args()
    if not os.environ.get("PANDA_HOME"):
        print("panda_devstack_adder: PANDA_HOME: not set", file=sys.stderr)
        sys.exit(2)

    from pandacommon.pandautils.thread_utils import LockPool

    from pandaserver.brokerage.SiteMapper import SiteMapper
    from pandaserver.config import panda_config
    from pandaserver.dataservice.adder_gen import AdderGen
    from pandaserver.taskbuffer.TaskBuffer import taskBuffer

    taskBuffer.init(panda_config.dbhost, panda_config.dbpasswd, nDBConnection=1, useTimeout=True)
    stop: list[int] = []
    busy: list[int] = []

    def on_term(*_: object) -> None:
        # between reports there is nothing to finish: leave at once (the TaskBuffer's own
        # clean-up takes seconds); inside AdderGen, finish that report first
        stop.append(1)
        if not busy:
            os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    lock_pool = LockPool()
    pid = f"devstack-adder-{os.getpid()}"
    print(f"panda_devstack_adder: running every {a.interval:g}s", flush=True)
    while not stop:
        try:
            reports = taskBuffer.listJobOutputReport(
                only_unlocked=True, time_limit=LOCK_MINUTES, limit=100, grace_period=0
            )
            site_mapper = SiteMapper(taskBuffer) if reports else None
            for panda_id, job_status, attempt_nr, _stamp in reports or []:
                if stop:
                    break
                if not taskBuffer.lockJobOutputReport(
                    panda_id=panda_id, attempt_nr=attempt_nr, pid=pid, time_limit=LOCK_MINUTES
                ):
                    continue
                busy.append(1)
                AdderGen(
                    taskBuffer,
                    panda_id,
                    job_status,
                    attempt_nr,
                    ignore_tmp_error=True,
                    siteMapper=site_mapper,
                    pid=pid,
                    prelock_pid=pid,
                    lock_offset=LOCK_MINUTES - 1,
                    lock_pool=lock_pool,
                ).run()
                busy.clear()
                print(f"panda_devstack_adder: job {panda_id} ({job_status}) added", flush=True)
        except Exception:
            busy.clear()
            traceback.print_exc()
        time.sleep(a.interval)
    os._exit(0)


if __name__ == "__main__":
    main()
