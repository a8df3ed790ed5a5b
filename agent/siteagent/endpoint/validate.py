"""Check an endpoint directory with globus-compute-endpoint's own code: the same schema
check, Jinja sandbox and config loader the endpoint runs when a task arrives."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siteagent.endpoint.render import CONFIG, ENVIRONMENT, SCHEMA, TEMPLATE
from siteagent.errors import ConfigError


@dataclass
class ValidationResult:
    endpoint_dir: Path
    user_config: dict[str, Any]
    rendered_yaml: str
    engine_type: str
    provider_type: str
    config: Any  # UserEndpointConfig, with an engine that was built but not started
    warnings: list[str] = field(default_factory=list)


def _quiet_endpoint_logs() -> None:
    # The endpoint logs schema failures at ERROR before raising; we report them ourselves.
    logging.getLogger("globus_compute_endpoint").setLevel(logging.CRITICAL)


def load_parent_config(endpoint_dir: Path):
    from globus_compute_endpoint.endpoint.config import CoreEndpointConfig
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    path = endpoint_dir / CONFIG
    if not path.is_file():
        raise ConfigError(f"{endpoint_dir}: no {CONFIG} (run `site-agent endpoint render` first)")
    try:
        parent = load_config_yaml(path.read_text())
    except Exception as err:  # the endpoint raises ClickException with its own words
        raise ConfigError(f"{path}: {_one_line(err)}") from None
    if not isinstance(parent, CoreEndpointConfig):
        raise ConfigError(f"{path}: has an engine block, so it is not a template endpoint")
    return parent


@dataclass(frozen=True)
class EndpointTemplate:
    """What the endpoint reads from its directory before rendering a user endpoint."""

    parent: Any  # CoreEndpointConfig
    template: str
    template_path: Path
    schema: dict[str, Any] | None
    identity: Any  # MappedPosixIdentity of this user
    runtime: dict[str, Any]


def load_endpoint_template(endpoint_dir: Path) -> EndpointTemplate:
    """Read config.yaml, the template and the schema as the endpoint does."""
    import os
    import pwd
    import uuid
    from dataclasses import asdict

    from globus_compute_endpoint.endpoint.config.utils import (
        load_user_config_schema,
        load_user_config_template,
    )
    from globus_compute_endpoint.endpoint.identity_mapper import MappedPosixIdentity
    from globus_compute_sdk.sdk.batch import create_user_runtime

    _quiet_endpoint_logs()
    endpoint_dir = Path(endpoint_dir)
    parent = load_parent_config(endpoint_dir)
    template_path = endpoint_dir / TEMPLATE
    if not template_path.is_file():
        raise ConfigError(f"{endpoint_dir}: no {TEMPLATE}")
    try:
        schema = load_user_config_schema(endpoint_dir / SCHEMA)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{endpoint_dir / SCHEMA}: not valid JSON: {err}") from None
    identity = MappedPosixIdentity(
        local_user_record=pwd.getpwuid(os.getuid()),
        matched_identity=uuid.UUID(int=0),
        globus_identity_candidates=[],
    )
    return EndpointTemplate(
        parent=parent,
        template=load_user_config_template(template_path),
        template_path=template_path,
        schema=schema,
        identity=identity,
        runtime=json.loads(json.dumps(asdict(create_user_runtime()))),
    )


def render_user_config(endpoint_dir: Path, user_config: dict[str, Any]) -> str:
    """Render the endpoint's template for ``user_config`` exactly as the endpoint would."""
    return render_loaded(load_endpoint_template(endpoint_dir), user_config)


def render_loaded(loaded: EndpointTemplate, user_config: dict[str, Any]) -> str:
    """``render_config_user_template`` of the endpoint; its refusals as one-line ConfigErrors."""
    import jinja2
    import jsonschema
    from globus_compute_endpoint.endpoint.config.utils import render_config_user_template

    try:
        return render_config_user_template(
            parent_config=loaded.parent,
            user_config_template=loaded.template,
            user_config_template_path=loaded.template_path,
            mapped_identity=loaded.identity,
            user_config_schema=loaded.schema,
            user_opts=user_config,
            user_runtime=loaded.runtime,
        )
    except jsonschema.ValidationError as err:
        from siteagent.schema_errors import describe

        where, problem = describe(err)
        raise ConfigError(f"user_endpoint_config: {where}: {problem}") from None
    except jsonschema.SchemaError as err:
        raise ConfigError(
            f"{loaded.template_path.parent / SCHEMA}: not a valid JSON schema: {err.message}"
        ) from None
    except ValueError as err:  # reserved words such as _GC
        raise ConfigError(f"user_endpoint_config: {_one_line(err)}") from None
    except jinja2.TemplateError as err:
        refused = _template_refusal(err)
        if refused:
            raise ConfigError(refused) from None
        path = loaded.template_path
        raise ConfigError(f"{path}: {type(err).__name__}: {_one_line(err)}") from None


def _template_refusal(err: BaseException) -> str | None:
    """The message of the template's own refusal (``{}["user_endpoint_config: ..."]``)."""
    text = str(err)
    start = text.find("user_endpoint_config: ")
    return text[start:].rstrip("'\"") if start >= 0 else None


def load_user_endpoint_config(rendered: str, source: str = "rendered user config"):
    """Load rendered YAML with the endpoint's loader (builds the engine, does not start it)."""
    from globus_compute_endpoint.endpoint.config import UserEndpointConfig
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    try:
        config = load_config_yaml(rendered)
    except Exception as err:
        raise ConfigError(f"{source}: {_one_line(err)}") from None
    if not isinstance(config, UserEndpointConfig) or config.engine is None:
        raise ConfigError(f"{source}: has no engine block")
    return config


def validate_endpoint(endpoint_dir: Path, user_config: dict[str, Any]) -> ValidationResult:
    """Render for ``user_config`` and load the result; raise ConfigError on the first problem."""
    endpoint_dir = Path(endpoint_dir)
    env_path = endpoint_dir / ENVIRONMENT
    if env_path.is_file():
        import yaml

        try:
            env = yaml.safe_load(env_path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{env_path}: invalid YAML: {_one_line(err)}") from None
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ConfigError(f"{env_path}: must map variable names to strings")
    rendered = render_user_config(endpoint_dir, user_config)
    loadable, warnings = _local_address(rendered)
    config = load_user_endpoint_config(loadable)
    engine = config.engine
    return ValidationResult(
        endpoint_dir=endpoint_dir,
        user_config=user_config,
        rendered_yaml=rendered,
        engine_type=type(engine).__name__,
        provider_type=type(engine.provider).__name__,
        config=config,
        warnings=warnings,
    )


def _local_address(rendered: str) -> tuple[str, list[str]]:
    """Swap an interface this host lacks (hsn0 off-site) for loopback, so the loader can
    still build the engine; the rendered text itself is returned unchanged to the caller."""
    import psutil
    import yaml

    data = yaml.safe_load(rendered)
    address = (data.get("engine") or {}).get("address") if isinstance(data, dict) else None
    if not isinstance(address, dict) or address.get("type") != "address_by_interface":
        return rendered, []
    ifname = address.get("ifname")
    if ifname in psutil.net_if_addrs():
        return rendered, []
    data["engine"]["address"] = "127.0.0.1"
    note = f"interface {ifname} is not on this host; loaded with address 127.0.0.1 instead"
    return yaml.safe_dump(data, sort_keys=False), [note]


def _one_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err)
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return "; ".join(lines[:3]) if lines else type(err).__name__
