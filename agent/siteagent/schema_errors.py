"""Turn jsonschema errors into one line that names the field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError

from siteagent.names import NEWLINE_GUARD


def field_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# validator -> the problem in words; {arg} is the schema's value, {inst} the given one
PROBLEMS = {
    "minimum": "must be >= {arg}",
    "maximum": "must be <= {arg}",
    "exclusiveMinimum": "must be > {arg}",
    "exclusiveMaximum": "must be < {arg}",
    "const": "must be {arg!r}",
    "pattern": "{inst} has characters or a form that is not allowed (must match {arg})",
    "minLength": "must have at least {arg} characters",
    "maxLength": "must have at most {arg} characters",
    "minItems": "must have at least {arg} items",
    "maxItems": "must have at most {arg} items",
    "maxProperties": "must have at most {arg} entries",
    "uniqueItems": "must not repeat items",
}


def describe(error: ValidationError) -> tuple[str, str]:
    """Return ``(field, problem)`` for a validation error, in words a site admin reads."""
    path = list(error.absolute_path)
    named = _named_field(error, path)
    if named is not None:
        return named
    branch = _meant_branch(error)
    if branch is not None:
        return describe(branch)
    return field_path(path) or "(top level)", _problem(error)


def _stated_problem(error: ValidationError) -> Any:
    """The schema's own words for the problem (``x-problem``: a site limit, a reserved name)."""
    return error.schema.get("x-problem") if isinstance(error.schema, dict) else None


def _is_alternatives(error: ValidationError) -> bool:
    return error.validator in ("anyOf", "oneOf") and bool(error.context)


def _meant_branch(error: ValidationError) -> ValidationError | None:
    """For an ``anyOf``/``oneOf`` error the schema does not word itself, the error of the
    one branch meant for the value (see ``_applicable_branch``)."""
    if _stated_problem(error) or not _is_alternatives(error):
        return None
    return _applicable_branch(error)


def _problem(error: ValidationError) -> str:
    """The problem with the value itself, in words."""
    why = _stated_problem(error)
    if why:  # the schema says it in words (a site limit, a reserved name)
        return str(why).replace("{value}", _short(error.instance).strip("'"))
    if error.validator == "not" and error.validator_value == NEWLINE_GUARD["not"]:
        return "must not contain a line break"
    if _is_alternatives(error):
        return f"{_short(error.instance)} is not allowed: must be " + " or ".join(
            _alternative(b) for b in error.validator_value
        )
    return _rule_problem(error)


def _rule_problem(error: ValidationError) -> str:
    """The broken rule (``enum``, ``type``, a bound of ``PROBLEMS``) in words, else
    jsonschema's own message."""
    v, arg = error.validator, error.validator_value
    if v == "enum":
        return "must be one of: " + ", ".join(str(a) for a in arg)
    if v == "type":
        return f"must be of type {arg if isinstance(arg, str) else ' or '.join(arg)}"
    if v in PROBLEMS:
        return PROBLEMS[str(v)].format(arg=arg, inst=_short(error.instance))
    return str(error.message)


def _named_field(error: ValidationError, path: list[Any]) -> tuple[str, str] | None:
    """Errors about a key of a mapping (missing, unknown, badly named), or None."""
    v, arg, inst = error.validator, error.validator_value, error.instance
    if v == "required":
        missing = next((r for r in arg if isinstance(inst, dict) and r not in inst), arg[0])
        return field_path([*path, missing]), "is required"
    if v == "additionalProperties":
        extra = sorted(set(inst) - set(error.schema.get("properties", {})))
        return field_path([*path, extra[0] if extra else "?"]), "is not a known field"
    if v == "propertyNames" or "propertyNames" in error.schema_path:
        return field_path(path), f"has a key {_short(inst)} that is not allowed"
    return None


def best_error(errors: Iterable[ValidationError]) -> ValidationError | None:
    """Pick one deterministic error to report: a wrong value before a missing key (a typo
    such as ``scheduler: slurmm`` is the likelier cause), then the first by document path."""
    errs = sorted(
        errors,
        key=lambda e: (e.validator == "required", [str(p) for p in e.absolute_path], e.validator),
    )
    return errs[0] if errs else None


# JSON Schema type -> the Python types of a parsed document that have it
TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _has_type(value: Any, kind: str | list[str]) -> bool:
    kinds = [kind] if isinstance(kind, str) else kind
    if isinstance(value, bool):  # a bool is an int to Python, not to JSON Schema
        return "boolean" in kinds
    return any(isinstance(value, TYPES.get(k, ())) for k in kinds)


def _applicable_branch(error: ValidationError) -> ValidationError | None:
    """The one ``anyOf``/``oneOf`` branch meant for this value (its ``type`` matches), as
    that branch's own most specific error; None when no single branch is."""
    meant = [
        i
        for i, branch in enumerate(error.validator_value)
        if isinstance(branch, dict)
        and "type" in branch
        and _has_type(error.instance, branch["type"])
    ]
    if len(meant) != 1:
        return None
    inside = [e for e in error.context or () if e.relative_schema_path[0] == meant[0]]
    return best_error(inside)


def _alternative(branch: Any) -> str:
    """One branch in words: ``an integer from 0 to 100000``, ``'auto'``."""
    if not isinstance(branch, dict):
        return repr(branch)
    if "const" in branch:
        return repr(branch["const"])
    if "enum" in branch:
        return "one of " + ", ".join(repr(v) for v in branch["enum"])
    kind = branch.get("type", "a value")
    text = kind if isinstance(kind, str) else " or ".join(kind)
    text = {"integer": "an integer", "array": "a list", "object": "a mapping"}.get(
        text, f"a {text}"
    )
    return _bounded(text, branch.get("minimum"), branch.get("maximum"))


def _bounded(text: str, lo: Any, hi: Any) -> str:
    """``text`` with its bounds in words: ``an integer from 0 to 100000``, ``a number >= 1``."""
    if lo is not None and hi is not None:
        return f"{text} from {lo} to {hi}"
    if lo is not None:
        return f"{text} >= {lo}"
    return f"{text} <= {hi}" if hi is not None else text


def _short(value: Any) -> str:
    from siteagent.secrets import mask_data

    # a proxy URL with a password may be the bad value: mask it before it is shown
    text = repr(mask_data(value))
    return text if len(text) <= 60 else text[:57] + "..."
