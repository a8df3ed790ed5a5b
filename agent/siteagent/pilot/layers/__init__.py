"""The pilot's layers, outermost first: GPU binding (variables), proxy (variables), CVMFS
(``cvmfsexec REPO... --`` or native), container (``apptainer exec ... IMAGE``), software
environment (variables), credentials and identity (variables: X509 proxy, PanDA token,
Harvester ids), payload (the PanDA pilot by default). One class per layer; see
``base`` for the interface.

A new layer is a ``PilotLayer`` subclass in its own module, put in ``STACK`` where it wraps
the payload, with ``after`` naming the layers whose decisions it reads. A new container
runtime is a ``ContainerRuntime`` subclass added to ``container.RUNTIMES``."""

from __future__ import annotations

from siteagent.pilot.layers.base import Layer, PilotLayer, PlanContext, planning_order
from siteagent.pilot.layers.container import ContainerLayer
from siteagent.pilot.layers.credentials import CredentialsLayer
from siteagent.pilot.layers.cvmfs import CvmfsLayer
from siteagent.pilot.layers.env import EnvLayer
from siteagent.pilot.layers.gpu import GpuLayer
from siteagent.pilot.layers.identity import IdentityLayer
from siteagent.pilot.layers.payload import PayloadLayer
from siteagent.pilot.layers.proxy import ProxyLayer

# stacking order: how the layers wrap the payload, are shown, reported and set up
STACK: tuple[type[PilotLayer], ...] = (
    GpuLayer, ProxyLayer, CvmfsLayer, ContainerLayer, EnvLayer, CredentialsLayer,
    IdentityLayer, PayloadLayer,
)  # fmt: skip
BY_NAME: dict[str, type[PilotLayer]] = {cls.name: cls for cls in STACK}

__all__ = ["BY_NAME", "STACK", "Layer", "PilotLayer", "PlanContext", "planning_order"]
