"""Turn jsonschema errors into one line that names the field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError


def field_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(error: ValidationError) -> tuple[str, str]:
    """Return ``(field, problem)`` for a validation error, in words a site admin reads."""
    path = list(error.absolute_path)
    v, arg, inst = error.validator, error.validator_value, error.instance
    if v == "required":
        missing = next((r for r in arg if isinstance(inst, dict) and r not in inst), arg[0])
        return field_path([*path, missing]), "is required"
    if v == "additionalProperties":
        extra = sorted(set(inst) - set(error.schema.get("properties", {})))
        return field_path([*path, extra[0] if extra else "?"]), "is not a known field"
    if v == "propertyNames" or "propertyNames" in error.schema_path:
        return field_path(path), f"has a key {_short(inst)} that is not allowed"
    problems = {
        "minimum": lambda: f"must be >= {arg}",
        "maximum": lambda: f"must be <= {arg}",
        "exclusiveMinimum": lambda: f"must be > {arg}",
        "exclusiveMaximum": lambda: f"must be < {arg}",
        "enum": lambda: "must be one of: " + ", ".join(str(a) for a in arg),
        "const": lambda: f"must be {arg!r}",
        "type": lambda: f"must be of type {arg if isinstance(arg, str) else ' or '.join(arg)}",
        "pattern": lambda: (
            f"{_short(inst)} has characters or a form that is not allowed (must match {arg})"
        ),
        "minLength": lambda: f"must have at least {arg} characters",
        "maxLength": lambda: f"must have at most {arg} characters",
        "minItems": lambda: f"must have at least {arg} items",
        "maxItems": lambda: f"must have at most {arg} items",
        "maxProperties": lambda: f"must have at most {arg} entries",
        "uniqueItems": lambda: "must not repeat items",
    }
    problem = problems.get(v, lambda: error.message)()
    return field_path(path) or "(top level)", problem


def best_error(errors: Iterable[ValidationError]) -> ValidationError | None:
    """Pick one deterministic error to report: the first by document path."""
    errs = sorted(errors, key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
    return errs[0] if errs else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
