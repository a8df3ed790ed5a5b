"""Harvester plugins that run workers as Globus Compute tasks on a site-agent endpoint.

Queue config (``panda_queueconfig.json``) of a site, for example::

    "submitter": {"module": "siteagent.harvester.submitter", "name": "GlobusComputeSubmitter",
                  "endpointId": "<uuid>", "site": "polaris", "pandaQueue": "ANALY_POLARIS",
                  "gpusPerWorker": 4, "ranksPerNode": 4, "container": "docker://...",
                  "userEndpointConfig": {"account": "ATLAS-HEP", "queue": "prod"}},
    "monitor": {"module": "siteagent.harvester.monitor", "name": "GlobusComputeMonitor", ...same keys},
    "sweeper": {"module": "siteagent.harvester.sweeper", "name": "GlobusComputeSweeper", ...same keys}
"""
