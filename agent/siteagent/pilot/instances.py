"""The PanDA instances a queue can belong to: CERN for ATLAS, BNL for ePIC (and sPHENIX).

An instance is where the pilot gets work (``--url``/``-p``) and, when it is not the CERN
instance pilot3's packaged ``default.cfg`` points at, where it reads the queue's description
(``--queuedata-url``) and the storage endpoints (``--storagedata-url``). The profile's
``pilot.instance`` chooses one; ``pilot.server_url`` and friends override it one by one.
``site-agent check`` probes the chosen instance's servers.
"""

from __future__ import annotations

from siteagent.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from siteagent.sections import PilotSection


@record(frozen=True)
class Instance:
    server_url: str
    server_port: int
    queuedata_url: str | None  # {queue}: the PanDA queue; None: pilot3's default.cfg
    storagedata_url: str | None
    check_targets: tuple[str, ...]


INSTANCES: dict[str, Instance] = {
    # pilot3's default.cfg already points at CERN's PanDA and CRIC
    "cern": Instance(
        "https://pandaserver.cern.ch",
        25443,
        None,
        None,
        # 25080 is PanDA's plain-HTTP port (an HTTPS probe of it fails on TLS)
        ("https://pandaserver.cern.ch:25443", "http://pandaserver.cern.ch:25080"),
    ),
    # ePIC: PanDAWMS/pilot-wrapper, branch eic, runpilot2-wrapper.sh (pandaurl, cricurl for
    # expt eic, and the --storagedata-url every pilot of that branch gets)
    "bnl": Instance(
        "https://pandaserver01.sdcc.bnl.gov",
        25443,
        "http://pandaserver01.sdcc.bnl.gov:25080/cache/schedconfig/{queue}.all.json",
        "https://datalake-cric.cern.ch/cache/ddmendpoints.json",
        (
            "https://pandaserver01.sdcc.bnl.gov:25443",
            "http://pandaserver01.sdcc.bnl.gov:25080",
            "https://datalake-cric.cern.ch:443",
        ),
    ),
}


@record(frozen=True)
class Endpoints:
    """Where one pilot talks to: the profile's values over its instance's."""

    server_url: str
    server_port: int
    queuedata_url: str | None
    storagedata_url: str | None


def endpoints(pilot: PilotSection, queue: str) -> Endpoints:
    """The PanDA URLs of ``queue`` for the profile's ``pilot`` section."""
    inst = INSTANCES[pilot.instance]
    queuedata = pilot.queuedata_url or inst.queuedata_url
    return Endpoints(
        server_url=pilot.server_url,  # the instance's unless the profile names one
        server_port=pilot.server_port,
        queuedata_url=queuedata.replace("{queue}", queue) if queuedata else None,
        storagedata_url=pilot.storagedata_url or inst.storagedata_url,
    )


def check_targets(pilot: PilotSection) -> tuple[str, ...]:
    """What ``site-agent check`` probes for the profile's PanDA instance (its own server
    only when the profile names another)."""
    inst = INSTANCES[pilot.instance]
    if (pilot.server_url, pilot.server_port) == (inst.server_url, inst.server_port):
        return inst.check_targets
    return (f"{pilot.server_url}:{pilot.server_port}",)
