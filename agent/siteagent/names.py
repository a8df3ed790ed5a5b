"""Shared name patterns and the ``SITE_AGENT_*`` environment variables, each defined once.

Patterns are JSON-schema/``re`` strings (a whitelist of characters, anchored): every value
that reaches a batch directive, worker_init or a shell word must match one. The variables are
the contract between the user endpoint's worker_init, the execution wrapper, the pilot
wrapper and the Harvester worker command.
"""

from __future__ import annotations

import re

# --- patterns (strings, as the JSON schema carries them; compile with re when matching) ---
WORD = "^[A-Za-z0-9_.+-]{1,64}$"  # account, queue, qos, reservation, PanDA queue
WALLTIME = "^[0-9]{1,3}:[0-5][0-9]:[0-5][0-9]$"
IMAGE = "^([a-z]+://)?[A-Za-z0-9_./:@+-]{1,512}$"
REPO = "^[a-z0-9][a-z0-9.-]{0,126}$"  # a CVMFS repository as a user config names it
ENV_NAME = "^[A-Z_][A-Z0-9_]{0,63}$"
ENV_VALUE = "^[A-Za-z0-9_./:,=@+%-]{0,512}$"
CONDA_ENV = "^[A-Za-z0-9_./+-]{1,256}$"
WORKER_ID = "^[A-Za-z0-9_.-]{1,128}$"
JOB_NAME = "^[A-Za-z0-9_.-]{1,64}$"

WORD_RE = re.compile(WORD)
IMAGE_RE = re.compile(IMAGE)
WORKER_ID_RE = re.compile(WORKER_ID)


class Var:
    """Names of the ``SITE_AGENT_*`` environment variables."""

    # set by the user endpoint's worker_init (one batch job = one worker shape)
    SITE = "SITE_AGENT_SITE"
    SCHEDULER = "SITE_AGENT_SCHEDULER"
    NODES = "SITE_AGENT_NODES"
    RANKS_PER_NODE = "SITE_AGENT_RANKS_PER_NODE"
    CORES_PER_RANK = "SITE_AGENT_CORES_PER_RANK"
    GPUS_PER_RANK = "SITE_AGENT_GPUS_PER_RANK"
    WALLTIME = "SITE_AGENT_WALLTIME"
    JOB_START = "SITE_AGENT_JOB_START"
    CVMFS_REPOS = "SITE_AGENT_CVMFS_REPOS"
    CONTAINER = "SITE_AGENT_CONTAINER"
    CONDA_ENV = "SITE_AGENT_CONDA_ENV"
    EXEC = "SITE_AGENT_EXEC"
    PILOT_DIR = "SITE_AGENT_PILOT_DIR"
    # set by the execution wrapper for each rank
    LOCAL_RANK = "SITE_AGENT_LOCAL_RANK"
    RANK = "SITE_AGENT_RANK"
    WORLD_SIZE = "SITE_AGENT_WORLD_SIZE"
    # set by the Harvester worker command
    WORKER_ID = "SITE_AGENT_WORKER_ID"
    STATE = "SITE_AGENT_STATE"
    HARVESTER_WORKDIR = "SITE_AGENT_HARVESTER_WORKDIR"
    # site or operator settings
    WORKDIR = "SITE_AGENT_WORKDIR"
    PROFILE_PATH = "SITE_AGENT_PROFILE_PATH"
    CVMFSEXEC_DIR = "SITE_AGENT_CVMFSEXEC_DIR"
    CVMFSEXEC_URL = "SITE_AGENT_CVMFSEXEC_URL"  # a mirror of github.com/cvmfs/cvmfsexec
    CVMFS_ROOT = "SITE_AGENT_CVMFS_ROOT"
    ENV_ROOT = "SITE_AGENT_ENV_ROOT"
    GPU_ROOT = "SITE_AGENT_GPU_ROOT"
    # the image site-agent runs from, where its runtime does not say (podman, docker)
    IMAGE = "SITE_AGENT_IMAGE"
