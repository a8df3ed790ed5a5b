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

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return config.get(node.id)
        if isinstance(node, ast.List | ast.Tuple):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.BoolOp):
            vals = (ev(v) for v in node.values)
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.UnaryOp):
            return not ev(node.operand)
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = ev(comp)
                if not _OPS[type(op)](left, right):
                    return False
                left = right
            return True
        raise ConfigError(f"constraints: {expr!r}: unsupported")

    try:
        return bool(ev(ast.parse(expr, mode="eval")))
    except (TypeError, ZeroDivisionError):  # e.g. None * 2: the field is not set here
        return False
