"""Render the four files of a template (multi-user) endpoint run in single-user mode."""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siteagent import __version__
from siteagent.managed import ManagedFile, WriteReport, write_managed
from siteagent.names import Var
from siteagent.profiles import Profile
from siteagent.proxy import proxy_environment, proxy_exports
from siteagent.schedulers import all_fields, scheduler_for
from siteagent.userconfig import defaults, integer_fields, user_config_schema

if TYPE_CHECKING:
    from siteagent.image import WorkerImage

CONFIG = "config.yaml"
TEMPLATE = "user_config_template.yaml.j2"
SCHEMA = "user_config_schema.json"
ENVIRONMENT = "user_environment.yaml"
ENDPOINT_FILES = (CONFIG, TEMPLATE, SCHEMA, ENVIRONMENT)
EXEC_WRAPPER = "bin/site-agent-exec"


@dataclass(frozen=True)
class RenderedEndpoint:
    profile: Profile
    files: dict[str, str]


def _meta_env():
    from siteagent.templating import shell_environment

    # Our own delimiters, so the endpoint's {{ }} / {% %} pass through untouched; each
    # scheduler's provider block comes from siteagent.schedulers' templates.
    return shell_environment("siteagent.endpoint", "siteagent.schedulers")


def jinja_literal(value: Any) -> str:
    """``value`` as a Jinja expression literal (JSON, with Jinja's none/true/false)."""
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(jinja_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {jinja_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot express {type(value).__name__} in a template")


def quote_like_endpoint(value: Any) -> Any:
    """Quote strings as the endpoint quotes user options (JSON), so defaults and
    user-given values render the same way."""
    if isinstance(value, dict):
        return {k: quote_like_endpoint(v) for k, v in value.items()}
    if isinstance(value, list):
        return [quote_like_endpoint(v) for v in value]
    if isinstance(value, str):
        return json.dumps(value)
    return value


def _address_yaml(address: str | None) -> str | None:
    """An IP stays as it is; an interface name (hsn0) is resolved when the user endpoint starts."""
    if not address:
        return None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "{type: address_by_interface, ifname: " + json.dumps(address) + "}"
    return json.dumps(address)


def _shell_word(value: str, what: str) -> str:
    """``value`` when it is an allowed local path (a plain shell word, literal to the
    endpoint's Jinja); a one-line ConfigError naming ``what`` else."""
    from siteagent.install import check_local_path

    return str(check_local_path(Path(value), what))


def _worker_init(
    profile: Profile,
    bin_dir: str,
    exec_path: str | None,
    pilot_path: str | None,
    image: WorkerImage | None = None,
) -> list[str]:
    """The profile's worker_init lines, then the proxy, variables and site-agent's paths."""
    lines = list(profile.environment.worker_init)
    lines += proxy_exports(profile)
    lines += [f"export {k}={v}" for k, v in profile.environment.variables.items()]
    if image is None:
        lines.append(f'export PATH="{bin_dir}:$PATH"')
    else:
        # image mode: the venv is the image's; the batch job needs the runtime that starts it
        lines += profile.container.setup
        lines += [f"mkdir -p {path}" for path in image.create]
    if exec_path is not None:
        lines.append(f"export {Var.EXEC}={exec_path}")
    if pilot_path is not None:
        # where `site-agent pilot` finds PanDA pilot3's pilot.py on the compute nodes
        lines.append(f"export {Var.PILOT_DIR}={pilot_path}")
    return lines


def _template_context(
    profile: Profile, worker_init: list[str], image: WorkerImage | None = None
) -> dict[str, Any]:
    """The values the endpoint's templates and the scheduler's provider block are rendered with."""
    endpoint = profile.endpoint
    sched = scheduler_for(profile)
    d = quote_like_endpoint(defaults(profile))
    d["usable_cores"] = profile.node.usable_cores
    # every scheduler option is set (None when not given), so each provider block can test it
    optional = list(all_fields())
    for name in optional:
        d.setdefault(name, None)
    return {
        "version": __version__,
        "profile": profile,
        "scheduler": profile.scheduler,
        "sched": sched,
        "endpoint": endpoint,
        "directives": profile.directives,
        "node": profile.node,
        "address": _address_yaml(endpoint.address),
        "display_name_literal": json.dumps(endpoint.display_name or endpoint.name),
        "defaults_literal": jinja_literal(d),
        "optional_fields": optional,
        "integer_fields": integer_fields(profile),
        "worker_init": worker_init,
        "launcher_type": sched.parsl_launcher,
        "init_blocks": endpoint.init_blocks,
        "image": image,
        "image_uri_literal": json.dumps(image.container_uri) if image else None,
    } | sched.template_context(profile)


def render_endpoint(
    profile: Profile,
    endpoint_dir: Path | None = None,
    python_bin: str | None = None,
    pilot_dir: Path | None = None,
    image: WorkerImage | None = None,
) -> RenderedEndpoint:
    """Render ``config.yaml``, the user config template, its schema and the environment.

    With ``endpoint_dir`` the execution wrapper is rendered too (``bin/site-agent-exec``), and
    worker_init exports its absolute path as ``SITE_AGENT_EXEC``: the launch path of tasks.
    With ``pilot_dir`` worker_init exports ``SITE_AGENT_PILOT_DIR`` (PanDA pilot3's pilot.py).
    With ``image`` (siteagent/image.py) the engine starts its worker pools inside that image, and
    worker_init loads the container runtime instead of putting this venv on PATH.
    """
    env = _meta_env()
    bin_dir = _shell_word(
        str(Path(python_bin or sys.executable).parent), "venv (python environment)"
    )
    exec_path = pilot_path = None
    if endpoint_dir is not None:
        exec_path = str(Path(endpoint_dir).expanduser().absolute() / EXEC_WRAPPER)
        _shell_word(exec_path, "--endpoint-dir")
    if pilot_dir is not None:
        pilot_path = _shell_word(str(Path(pilot_dir).expanduser().absolute()), "--pilot-dir")
    worker_init = _worker_init(profile, bin_dir, exec_path, pilot_path, image)
    context = _template_context(profile, worker_init, image)
    # the scheduler's provider block, rendered with the same values, without surrounding newlines
    provider = env.get_template(scheduler_for(profile).provider_template)
    context["provider_block"] = provider.render(context).strip("\n")
    variables = proxy_environment(profile) | profile.environment.variables
    files = {
        CONFIG: env.get_template("config.yaml.in").render(context),
        TEMPLATE: env.get_template("user_config_template.yaml.j2.in").render(context),
        SCHEMA: json.dumps(user_config_schema(profile), indent=2) + "\n",
        ENVIRONMENT: env.get_template("user_environment.yaml.in").render(
            context | {"variables": sorted((k, json.dumps(v)) for k, v in variables.items())}
        ),
    }
    if exec_path is not None:
        from siteagent.wrappers.render import render_wrapper

        files[EXEC_WRAPPER] = render_wrapper(profile)
    return RenderedEndpoint(profile=profile, files=files)


def managed_files(rendered: RenderedEndpoint) -> dict[str, ManagedFile]:
    """The rendered files with the mode each is written with."""
    # the environment file and the template's worker_init (http_proxy=http://user:pass@...)
    # may carry proxy credentials: owner-only
    modes = {ENVIRONMENT: 0o600, TEMPLATE: 0o600, EXEC_WRAPPER: 0o755}
    return {
        name: ManagedFile(text, modes.get(name, 0o644)) for name, text in rendered.files.items()
    }


def write_endpoint(
    rendered: RenderedEndpoint, out_dir: Path, *, force: bool = False
) -> WriteReport:
    """Write the rendered files atomically; user edits stop the write unless ``force``."""
    return write_managed(Path(out_dir), managed_files(rendered), force=force)
