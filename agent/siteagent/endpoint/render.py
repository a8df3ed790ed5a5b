"""Render the four files of a template (multi-user) endpoint run in single-user mode."""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siteagent import __version__
from siteagent.errors import ConfigError
from siteagent.managed import ManagedFile, WriteReport, write_managed
from siteagent.profiles import Profile
from siteagent.userconfig import SCHEDULER_FIELDS, defaults, user_config_schema

if TYPE_CHECKING:
    from siteagent.image import WorkerImage

CONFIG = "config.yaml"
TEMPLATE = "user_config_template.yaml.j2"
SCHEMA = "user_config_schema.json"
ENVIRONMENT = "user_environment.yaml"
ENDPOINT_FILES = (CONFIG, TEMPLATE, SCHEMA, ENVIRONMENT)
EXEC_WRAPPER = "bin/site-agent-exec"

OPTIONAL_FIELDS = ("account", "queue", "qos", "constraint", "reservation", "filesystems")


@dataclass(frozen=True)
class RenderedEndpoint:
    profile: Profile
    files: dict[str, str]


def _meta_env():
    import jinja2

    # Our own delimiters, so the endpoint's {{ }} / {% %} pass through untouched.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("siteagent.endpoint", "templates"),
        block_start_string="<%",
        block_end_string="%>",
        variable_start_string="<<",
        variable_end_string=">>",
        comment_start_string="<#",
        comment_end_string="#>",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def jinja_literal(value: Any) -> str:
    """``value`` as a Jinja expression literal (JSON, with Jinja's none/true/false)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
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


def proxy_exports(profile: Profile) -> list[str]:
    """Shell lines that give compute nodes the site proxy (both spellings, as curl reads them)."""
    proxy = profile.section("proxy")
    lines = []
    for scheme in ("http", "https"):
        if proxy.get(scheme):
            lines.append(
                f"export {scheme}_proxy={proxy[scheme]} {scheme.upper()}_PROXY={proxy[scheme]}"
            )
    if lines and proxy.get("no_proxy"):
        joined = ",".join(proxy["no_proxy"])
        lines.append(f"export no_proxy={joined} NO_PROXY={joined}")
    return lines


def proxy_environment(profile: Profile, *, compute: bool = False) -> dict[str, str]:
    """Proxy variables for processes on the login node (none where only compute nodes use
    one), or with ``compute`` for processes on compute nodes (the pilot wrapper)."""
    proxy = profile.section("proxy")
    if proxy.get("scope") == "compute" and not compute:
        return {}
    env = {}
    for scheme in ("http", "https"):
        if proxy.get(scheme):
            env[f"{scheme}_proxy"] = env[f"{scheme.upper()}_PROXY"] = proxy[scheme]
    if env and proxy.get("no_proxy"):
        env["no_proxy"] = env["NO_PROXY"] = ",".join(proxy["no_proxy"])
    return env


def _address_yaml(address: str | None) -> str | None:
    """An IP stays as it is; an interface name (hsn0) is resolved when the user endpoint starts."""
    if not address:
        return None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "{type: address_by_interface, ifname: " + json.dumps(address) + "}"
    return json.dumps(address)


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
    endpoint = profile.section("endpoint")
    directives = profile.section("directives")
    node = profile.node
    scheduler = profile.scheduler
    bin_dir = str(Path(python_bin or sys.executable).parent)
    if any(c in bin_dir for c in "\n;$`\"'\\ "):
        raise ConfigError(f"python environment path {bin_dir!r} has characters a shell would read")

    d = quote_like_endpoint(defaults(profile))
    d["usable_cores"] = node.usable_cores
    for name in OPTIONAL_FIELDS:
        d.setdefault(name, None)
    optional = [f for f in OPTIONAL_FIELDS if f in SCHEDULER_FIELDS[scheduler] or f in d]

    address = _address_yaml(endpoint.get("address"))

    worker_init = list(profile.section("environment")["worker_init"])
    worker_init += proxy_exports(profile)
    worker_init += [
        f"export {k}={v}" for k, v in profile.section("environment")["variables"].items()
    ]
    if image is None:
        worker_init.append(f'export PATH="{bin_dir}:$PATH"')
    else:
        # image mode: the venv is the image's; the batch job needs the runtime that starts it
        worker_init += profile.section("container")["setup"]
        worker_init += [f"mkdir -p {path}" for path in image.create]
    exec_path = None
    if endpoint_dir is not None:
        exec_path = str(Path(endpoint_dir).expanduser().absolute() / EXEC_WRAPPER)
        if any(c in exec_path for c in "\n;$`\"'\\ "):
            raise ConfigError(f"endpoint directory {exec_path!r} has characters a shell would read")
        worker_init.append(f"export SITE_AGENT_EXEC={exec_path}")
    if pilot_dir is not None:
        # where `site-agent pilot` finds PanDA pilot3's pilot.py on the compute nodes
        pilot_path = str(Path(pilot_dir).expanduser().absolute())
        if any(c in pilot_path for c in "\n;$`\"'\\ "):
            raise ConfigError(f"--pilot-dir: {pilot_path!r} has characters a shell would read")
        worker_init.append(f"export SITE_AGENT_PILOT_DIR={pilot_path}")

    select = directives.get("select")
    context = {
        "version": __version__,
        "profile": profile,
        "scheduler": scheduler,
        "endpoint": endpoint,
        "directives": directives,
        "node": node,
        "address": address,
        "display_name_literal": json.dumps(endpoint.get("display_name") or endpoint["name"]),
        "defaults_literal": jinja_literal(d),
        "optional_fields": optional,
        "select_options": f":{select}" if select else "",
        "worker_init": worker_init,
        "launcher_type": "SingleNodeLauncher" if scheduler == "local" else "SimpleLauncher",
        "init_blocks": endpoint["init_blocks"],
        "image": image,
        "image_uri_literal": json.dumps(image.container_uri) if image else None,
    }
    variables = proxy_environment(profile) | profile.section("environment")["variables"]
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
    # the environment file may carry proxy credentials: owner-only
    modes = {ENVIRONMENT: 0o600, EXEC_WRAPPER: 0o755}
    return {
        name: ManagedFile(text, modes.get(name, 0o644)) for name, text in rendered.files.items()
    }


def write_endpoint(
    rendered: RenderedEndpoint, out_dir: Path, *, force: bool = False
) -> WriteReport:
    """Write the rendered files atomically; user edits stop the write unless ``force``."""
    return write_managed(Path(out_dir), managed_files(rendered), force=force)


def template_resource(name: str) -> str:
    return resources.files("siteagent.endpoint.templates").joinpath(name).read_text()
