"""``expect:`` conditions: small Python expressions over a probe's value, compiled with
RestrictedPython and checked node by node before anything runs.

``>= 2`` (the comparison form, the probe's value implied), ``value >= 2 and value < 500``,
``healthy_replicas >= 2``, ``min(value, 10) > 3``, ``value < 5%``: the names are ``value`` and
the probe's own name, the calls ``min``, ``max`` and ``abs``, the numbers at most
``MAX_NUMBER``. Attribute access, subscripts, imports, lambdas, comprehensions, strings, ``**``
(huge numbers) and every other name are refused when the file is read, with the character
where the offending part starts.

The time is bounded by construction rather than by a timer: the code has no loop and no
backward jump (checked on the bytecode), at most ``MAX_CHARS`` characters, and its operands are
bounded floats and small integers; the tests measure the worst case.
"""

from __future__ import annotations

import ast
import dis
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from RestrictedPython import compile_restricted_eval

MAX_CHARS = 200
MAX_NUMBER = 10**15
CALLS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs}
_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)")
# ``5%`` is a percentage (the number itself, as the probes report percents), unless an operand
# follows: then ``%`` is the modulo operator.
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*(?!(?:and|or|if|else|not)\b)[\w(.])")
_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.FloorDiv, ast.Compare,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Name, ast.Load, ast.Constant,
    ast.Call,
)  # fmt: skip
_CONDITIONS = (ast.Compare, ast.BoolOp)
_WHAT = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambdas",
    ast.Pow: "'**' (numbers without bound)", ast.ListComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.NamedExpr: "assignments", ast.IfExp: "if-else",
    ast.Starred: "'*' arguments", ast.JoinedStr: "strings",
}  # fmt: skip


class ConditionError(ValueError):
    """An ``expect:`` that is refused; the message says what and where (1-based)."""


@dataclass(frozen=True)
class Expectation:
    """A compiled ``expect:``; ``holds`` evaluates it over one observed value."""

    text: str
    names: tuple[str, ...]
    code: CodeType = field(repr=False, compare=False)

    def holds(self, observed: float | None) -> bool:
        if observed is None:
            return False  # a probe that could not observe never satisfies a condition
        scope = dict.fromkeys(self.names, observed)
        try:
            # Code that compile_condition compiled and checked; builtins are the three calls.
            result = eval(self.code, {"__builtins__": dict(CALLS)}, scope)
        except (ArithmeticError, TypeError, ValueError):
            return False  # a division by zero, min() of nothing: the condition does not hold
        return result is True


def compile_condition(raw: Any, names: tuple[str, ...] = ("value",)) -> Expectation:
    """The ``expect:`` ``raw`` compiled over ``names``; ``ConditionError`` with the position
    of the offending part otherwise (nothing of it has run)."""
    text = str(raw).strip()
    if not text:
        raise ConditionError("empty; a condition such as '>= 2' or 'value < 500'")
    if len(text) > MAX_CHARS:
        raise ConditionError(f"{len(text)} characters; a condition has at most {MAX_CHARS}")
    # The comparison form (``>= 2``) implies the value on the left; positions in messages
    # are given in the text as written.
    prefix = "value " if _COMPARISON.match(text) else ""
    # ``5%`` becomes ``5 `` (same length, so positions stay right).
    source = prefix + _PERCENT.sub(lambda m: m.group(1).ljust(len(m.group(0))), text)

    def at(node: ast.AST) -> int:
        return max(getattr(node, "col_offset", 0) - len(prefix), 0) + 1

    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        column = max((error.offset or 1) - len(prefix), 1)
        raise ConditionError(f"not an expression (character {column}: {error.msg})") from None
    allowed_names = set(names) | ({"value"} if prefix else set())
    for node in ast.walk(tree):
        _check(node, allowed_names, at)
    if not isinstance(tree.body, _CONDITIONS) and not (
        isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.Not)
    ):
        raise ConditionError(
            "not a condition: a comparison such as '>= 2' or 'value < 500' (character 1)"
        )
    result = compile_restricted_eval(source)
    if result.errors or result.code is None:
        raise ConditionError("; ".join(result.errors) or "refused by RestrictedPython")
    for instruction in dis.get_instructions(result.code):
        # Bytecode of an expression only jumps forward (and, or, chained comparisons): every
        # instruction runs at most once. A backward jump would be a loop; refuse it outright.
        if "BACKWARD" in instruction.opname or instruction.opname.startswith("FOR_ITER"):
            raise ConditionError("refused: the compiled condition loops")
    return Expectation(text, tuple(sorted(allowed_names)), result.code)


def _check(node: ast.AST, names: set[str], at: Callable[[ast.AST], int]) -> None:
    if isinstance(node, ast.Name):
        if node.id not in names and node.id not in CALLS:
            known = ", ".join(sorted(names))
            raise ConditionError(
                f"unknown name {node.id!r} at character {at(node)} (names: {known})"
            )
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in CALLS:
            raise ConditionError(
                f"a call at character {at(node)}; only {', '.join(CALLS)} may be called"
            )
        if node.keywords:
            raise ConditionError(f"keyword arguments at character {at(node)}")
        return
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConditionError(
                f"{type(value).__name__} literal at character {at(node)}; only numbers"
            )
        if not abs(value) <= MAX_NUMBER:
            raise ConditionError(
                f"the number at character {at(node)} is larger than {MAX_NUMBER:.0e}"
            )
        return
    if isinstance(node, ast.BinOp | ast.UnaryOp) and not isinstance(node.op, _ALLOWED):
        # Operators carry no position; their expression does.
        what = _WHAT.get(type(node.op), type(node.op).__name__)
        raise ConditionError(f"not allowed in a condition: {what} (character {at(node)})")
    if not isinstance(node, _ALLOWED):
        what = _WHAT.get(type(node), type(node).__name__)
        raise ConditionError(f"not allowed in a condition: {what} (character {at(node)})")
