"""Shared name patterns and the ``SITE_AGENT_*`` environment variables, each defined once.

Patterns are JSON-schema/``re`` strings (a whitelist of characters, anchored): every value
that reaches a batch directive, worker_init or a shell word must match one. The variables are
the contract between the user endpoint's worker_init, the execution wrapper, the pilot
wrapper and the Harvester worker command.
"""

from __future__ import annotations

import re

# --- patterns (strings, as the JSON schema carries them; compile with re when matching) ---
# ``$`` also matches before a final newline (Python and the endpoint's jsonschema, which uses
# ``re.search``), so match in Python with ``full()`` (``\A...\Z``) and put ``string_schema()``
# (which adds a newline guard) in JSON schemas: never a bare ``re.match(PATTERN, value)``.
WORD = "^[A-Za-z0-9_.+-]{1,64}$"  # account, queue, qos, reservation, PanDA queue
WALLTIME = "^[0-9]{1,3}:[0-5][0-9]:[0-5][0-9]$"
IMAGE = "^([a-z]+://)?[A-Za-z0-9_./:@+-]{1,512}$"
REPO = "^[a-z0-9][a-z0-9.-]{0,126}$"  # a CVMFS repository as a user config names it
ENV_NAME = "^[A-Z_][A-Z0-9_]{0,63}$"
ENV_VALUE = "^[A-Za-z0-9_./:,=@+%-]{0,512}$"
CONDA_ENV = "^[A-Za-z0-9_./+-]{1,256}$"
WORKER_ID = "^[A-Za-z0-9_.-]{1,128}$"
JOB_NAME = "^[A-Za-z0-9_.-]{1,64}$"
# an absolute path that worker_init, a shell word and the endpoint's Jinja take literally:
# no whitespace, quote, $, backtick, braces, glob or redirection character, no ':' (PATH)
LOCAL_PATH = "^/[A-Za-z0-9_.+@%,=/-]{0,4095}$"
# variables a remote user_endpoint_config may not set in worker_init: the loader, shells and
# interpreters read them, and SITE_AGENT_* is site-agent's own contract (e.g. JOB_START)
ENV_DENIED = (
    "^(LD_|DYLD_|BASH_|SITE_AGENT_|PYTHON|PERL|RUBY|APPTAINER|SINGULARITY|GLOBUS_|PARSL_)"
    "|^(PATH|ENV|IFS|PS4|SHELLOPTS|BASHOPTS|HOME|TMPDIR|SHELL|CDPATH|GCONV_PATH|MANPATH"
    "|HTTP_PROXY|HTTPS_PROXY|NO_PROXY|ALL_PROXY|FTP_PROXY|SSL_CERT_FILE|SSL_CERT_DIR"
    "|X509_USER_PROXY|X509_CERT_DIR|NODE_OPTIONS|JAVA_TOOL_OPTIONS)$"
)
# the newline guard of string_schema: what ``$`` would let through before the end ("type":
# without it, ``not`` refuses every non-string, which hides the "must be a string" error)
NEWLINE_GUARD = {"not": {"type": "string", "pattern": "[\\n\\r]"}}


class Pattern:
    """A regular expression compiled on its first match. Modules on a rank's path define a
    dozen patterns and a warm rank matches few of them; compiling each costs it 50-150 us."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def compiled(self) -> re.Pattern[str]:
        """The ``re`` pattern, compiled once."""
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return self._compiled

    def match(self, text: str) -> re.Match[str] | None:
        return self.compiled().match(text)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.compiled().fullmatch(text)


def full(pattern: str) -> Pattern:
    """``pattern`` (``^...$``) made so that ``.match`` must consume the whole string:
    ``\\A...\\Z`` (no newline may follow)."""
    body = pattern.removeprefix("^").removesuffix("$")
    return Pattern(rf"\A(?:{body})\Z")


def string_schema(pattern: str, **extra: object) -> dict[str, object]:
    """A JSON-schema string property matching ``pattern`` whole: the endpoint's jsonschema
    searches with ``re.search``, so a newline guard stops ``"P1\\n"`` passing ``...$``."""
    return {"type": "string", "pattern": pattern, **NEWLINE_GUARD, **extra}


WORD_RE = full(WORD)
IMAGE_RE = full(IMAGE)
WORKER_ID_RE = full(WORKER_ID)
JOB_NAME_RE = full(JOB_NAME)
WALLTIME_RE = full(WALLTIME)
LOCAL_PATH_RE = full(LOCAL_PATH)


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
