"""Identity layer: the variables Harvester's submit templates give every pilot, so PanDA can
tie jobs to workers and to the rank that ran them.

pilot3 reads, in its own code:

- ``HARVESTER_ID`` and ``HARVESTER_WORKER_ID``: sent as ``harvester_id``/``worker_id`` with
  every getJob (pilot/control/job.py ``get_dispatcher_dictionary``) and, only when both are
  set, ``updateWorkerPilotStatus`` at start and end (pilot.py ``send_worker_status``);
- ``GTAG``: the pilot id, ``pilotID=<GTAG>|PR|<version>`` in job updates, else ``unknown``
  (pilot/user/<user>/common.py ``get_pilot_id``, pilot/control/job.py);
- ``PANDA_JSID``: the job scheduler id (pilot/util/auxiliary.py ``get_job_scheduler_id``),
  ``harvester-<id>`` in Harvester's templates.

One worker runs N ranks: they share the worker id, and GTAG (the log URL of the rank: where
its logs are kept when it fails, pilot/run.py) ends in the rank's own pilot id.
"""

from __future__ import annotations

import os

from siteagent.errors import ConfigError
from siteagent.names import WORD_RE
from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from collections.abc import Mapping


@record(frozen=True)
class Identity:
    harvester_id: str | None
    worker_id: str | None
    gtag: str


def _given(option: str | None, environ: Mapping[str, str], var: str, flag: str) -> str | None:
    value = option if option is not None else environ.get(var) or None
    if value is not None:
        _check_word(value, flag)
    return value


def _check_word(value: str, flag: str) -> None:
    if not WORD_RE.match(value):
        raise ConfigError(f"{flag}: '{value}' has characters that are not allowed")


def identity_env(ident: Identity) -> dict[str, str]:
    """The variables, as Harvester's htcondor submit template sets them."""
    env = {"GTAG": ident.gtag}
    if ident.harvester_id:
        env |= {"HARVESTER_ID": ident.harvester_id, "PANDA_JSID": f"harvester-{ident.harvester_id}"}
    if ident.worker_id:
        env["HARVESTER_WORKER_ID"] = ident.worker_id
    return env


class IdentityLayer(PilotLayer):
    name = "identity"

    def plan(self, ctx: PlanContext) -> Layer:
        from siteagent.pilot.logs import log_dir

        opts = ctx.opts
        hid = _given(opts.harvester_id, ctx.environ, "HARVESTER_ID", "--harvester-id")
        wid = _given(
            opts.harvester_worker_id, ctx.environ, "HARVESTER_WORKER_ID", "--harvester-worker-id"
        )
        host = os.uname().nodename.split(".")[0]  # gethostname(), without importing socket
        gtag = f"file://{host}{log_dir(ctx.environ, ctx.pilot_id)}"
        ident = Identity(hid, wid, gtag)
        summary = (
            f"Harvester {hid} worker {wid}, pilot {ctx.pilot_id}"
            if hid or wid
            else f"pilot {ctx.pilot_id} (no Harvester ids)"
        )
        return Layer(self.name, summary, env=identity_env(ident), detail=ident)
