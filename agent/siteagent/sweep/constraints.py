"""Constraints of a grid file: small Python expressions over a point's canonical fields
(``ranks_per_node * gpus_per_rank <= 4``), parsed with ``ast`` and evaluated by walking the
tree: names, numbers, strings, lists, arithmetic, comparisons, ``and``/``or``/``not``; no calls,
attributes or subscripts, so a grid file cannot run code.
"""

from __future__ import annotations

import ast
import operator
from typing import Any

from siteagent.errors import ConfigError

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.BinOp,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    *_OPS,
)


def names(expr: str) -> set[str]:
    """The fields ``expr`` names; ConfigError unless it is a plain expression."""
    tree = _parse(expr)
    _check_allowed(tree, expr)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _parse(expr: str) -> ast.Expression:
    try:
        return ast.parse(expr, mode="eval")
    except SyntaxError:
        raise ConfigError(f"constraints: {expr!r}: not an expression") from None


def _check_allowed(tree: ast.Expression, expr: str) -> None:
    """Refuse any node but fields, constants, arithmetic, comparisons and and/or/not."""
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ConfigError(
                f"constraints: {expr!r}: only fields, numbers, strings, arithmetic, "
                f"comparisons, and/or/not are allowed"
            )


def evaluate(expr: str, config: dict[str, Any]) -> bool:
    """The value of a checked constraint for a canonical config (a missing field is None)."""
    try:
        return bool(_value(ast.parse(expr, mode="eval"), config))
    except (TypeError, ZeroDivisionError):  # e.g. None * 2: the field is not set here
        return False
    except _Unsupported:
        raise ConfigError(f"constraints: {expr!r}: unsupported") from None


class _Unsupported(Exception):
    """A node ``_RULES`` has no rule for (``_check_allowed`` refuses it first)."""


def _value(node: ast.AST, config: dict[str, Any]) -> Any:
    """The value of one node of a constraint, by its type's rule."""
    rule = _RULES.get(type(node))
    if rule is None:
        raise _Unsupported
    return rule(node, config)


def _bool_op(node: Any, config: dict[str, Any]) -> bool:
    values = (_value(v, config) for v in node.values)
    return all(values) if isinstance(node.op, ast.And) else any(values)


def _compare(node: Any, config: dict[str, Any]) -> bool:
    """A chain of comparisons (``1 <= x < 4``), each operand evaluated once."""
    left = _value(node.left, config)
    for op, comp in zip(node.ops, node.comparators, strict=True):
        right = _value(comp, config)
        if not _OPS[type(op)](left, right):
            return False
        left = right
    return True


def _sequence(node: Any, config: dict[str, Any]) -> list[Any]:
    return [_value(e, config) for e in node.elts]


_RULES: dict[type, Any] = {
    ast.Expression: lambda node, config: _value(node.body, config),
    ast.Constant: lambda node, config: node.value,
    ast.Name: lambda node, config: config.get(node.id),
    ast.List: _sequence,
    ast.Tuple: _sequence,
    ast.BoolOp: _bool_op,
    ast.UnaryOp: lambda node, config: not _value(node.operand, config),  # only `not` is allowed
    ast.BinOp: lambda node, config: _OPS[type(node.op)](
        _value(node.left, config), _value(node.right, config)
    ),
    ast.Compare: _compare,
}
