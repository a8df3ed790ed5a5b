"""Proxy layer: the site proxy for the pilot, CVMFS and downloads (compute-node scope)."""

from __future__ import annotations

from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext
from siteagent.proxy import proxy_environment


class ProxyLayer(PilotLayer):
    name = "proxy"

    def plan(self, ctx: PlanContext) -> Layer:
        proxy = proxy_environment(ctx.profile, compute=True)
        return Layer(self.name, "site proxy" if proxy else "no proxy", env=proxy)
