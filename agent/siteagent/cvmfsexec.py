"""cvmfsexec on the login node: is it where the pilot looks, and how to put it there.

cvmfsexec (https://github.com/cvmfs/cvmfsexec) mounts CVMFS repositories unprivileged; its
``makedist`` builds the ``dist/`` directory (the CVMFS client and the configuration: osg,
egi or default) that ``cvmfsexec`` runs from. ``site-agent install --cvmfsexec`` clones it and
runs makedist where the login node reaches GitHub (through the profile's proxy when the login
node uses it); elsewhere ``install`` and ``check`` print exactly these commands to run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from siteagent.errors import SiteAgentError
from siteagent.names import Var
from siteagent.profiles import Profile

UPSTREAM = "https://github.com/cvmfs/cvmfsexec.git"
TIMEOUT = 900  # seconds for clone + makedist (makedist downloads the CVMFS client)


@dataclass(frozen=True)
class CvmfsexecStatus:
    directory: Path
    present: bool  # cvmfsexec is there and executable
    dist: bool  # dist/ is built (else the pilot runs makedist on first use)

    @property
    def ready(self) -> bool:
        return self.present and self.dist


def status(profile: Profile) -> CvmfsexecStatus:
    """Where the pilot will look for cvmfsexec for this profile, and what is there."""
    from siteagent.pilot.layers.cvmfs import cvmfsexec_dir

    base = Path(cvmfsexec_dir(profile))
    exe = base / "cvmfsexec"
    return CvmfsexecStatus(base, os.access(exe, os.X_OK), (base / "dist").is_dir())


def provision_commands(profile: Profile, directory: Path) -> list[list[str]]:
    """The commands that put cvmfsexec into ``directory`` and build its dist/."""
    url = os.environ.get(Var.CVMFSEXEC_URL) or UPSTREAM
    commands = [["git", "clone", "--depth", "1", url, str(directory)]]
    if profile.cvmfs.config != "none":
        commands.append([str(directory / "makedist"), profile.cvmfs.config])
    return commands


def shell_text(commands: list[list[str]]) -> str:
    """The commands as one line a user can paste."""
    return " && ".join(shlex.join(cmd) for cmd in commands)


def provision(profile: Profile) -> list[str]:
    """Clone cvmfsexec and run makedist where the pilot will look; what was run. Nothing
    when it is there already. SiteAgentError (with the commands) when a step fails."""
    from siteagent.proxy import proxy_environment

    found = status(profile)
    if found.ready:
        return []
    commands = provision_commands(profile, found.directory)
    if found.present:  # cloned before, dist/ still missing
        commands = commands[1:]
    env = os.environ | proxy_environment(profile)  # the login node's proxy, if it uses one
    for cmd in commands:
        _run_step(cmd, found.directory, env, commands)
    return [shlex.join(cmd) for cmd in commands]


def _run_step(
    cmd: list[str], directory: Path, env: dict[str, str], commands: list[list[str]]
) -> None:
    """Run one of ``commands`` (git clone next to ``directory``, makedist in it); a failure
    names the whole sequence to run by hand."""
    from siteagent.pilot.layers.cvmfs import last_line

    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            cmd, env=env, cwd=directory.parent if cmd[0] == "git" else directory,
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SiteAgentError(f"cvmfsexec: {shlex.join(cmd)}: {err}") from None
    if r.returncode != 0:
        raise SiteAgentError(
            f"cvmfsexec: {shlex.join(cmd)} exited {r.returncode}: {last_line(r, '')[:200]} "
            f"(run by hand: {shell_text(commands)})"
        )
