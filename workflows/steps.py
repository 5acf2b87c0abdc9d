"""The step language of workflow definitions: parsed into a flat program the worker executes.

A definition is `{"steps": [...], "timeout_seconds": N}`; each step is one of

    "name"                                   a named marker: logged, does nothing else
    {"set": {"key": value, ...}}             sets values of the run's output (JSON literals)
    {"wait": seconds}                        waits (at most WORKFLOW_MAX_WAIT_SECONDS)
    {"if": condition, "then": [...], "else": [...]}   branches on the input or the values
    {"approval": "name"}                     pauses until POST /api/runs/{id}/approve/ names it
    {"fail": "message"}                      ends the run as failed

A condition is `{"input": "key"}` or `{"value": "key"}` with one test: `equals`, `not_equals`,
`gt`, `gte`, `lt`, `lte`, `in` (a list) or `exists` (true/false). Nothing in the language can
call code, read another run, or loop: a program is finite, at most MAX_INSTRUCTIONS long, and
its only effects are the run's own output and log.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from workflows.errors import InvalidDefinition

MAX_INSTRUCTIONS = 500
MAX_DEPTH = 8
_TESTS = {
    "equals": operator.eq,
    "not_equals": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass(frozen=True, slots=True)
class Instruction:
    """One executable step: `op` is mark, set, wait, approval, fail, jump_unless or jump."""

    op: str
    where: str
    arg: Any = None
    target: int = 0


@dataclass(frozen=True, slots=True)
class Program:
    instructions: tuple[Instruction, ...]
    timeout_seconds: int


def parse(definition: Any) -> Program:
    """The program of a definition, or InvalidDefinition saying which step is wrong and why."""
    if not isinstance(definition, dict):
        raise InvalidDefinition("definition: must be a JSON object")
    # Keys other than these two are the workflow's own metadata: allowed, ignored.
    timeout = definition.get("timeout_seconds", settings.WORKFLOW_RUN_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 86_400:
        raise InvalidDefinition("timeout_seconds: must be a whole number of seconds, 1 to 86400")
    out: list[Instruction] = []
    _block(definition.get("steps", []), "steps", out, depth=0)
    return Program(instructions=tuple(out), timeout_seconds=timeout)


def _block(steps: Any, where: str, out: list[Instruction], *, depth: int) -> None:
    if not isinstance(steps, list):
        raise InvalidDefinition(f"{where}: must be a list of steps")
    if depth > MAX_DEPTH:
        raise InvalidDefinition(f"{where}: branches nest deeper than {MAX_DEPTH}")
    for index, step in enumerate(steps):
        _step(step, f"{where}[{index}]", out, depth=depth)
        if len(out) > MAX_INSTRUCTIONS:
            raise InvalidDefinition(f"{where}: more than {MAX_INSTRUCTIONS} steps")


def _step(step: Any, where: str, out: list[Instruction], *, depth: int) -> None:
    if isinstance(step, str):
        out.append(Instruction("mark", where, step[:200]))
        return
    if not isinstance(step, dict) or len(step.keys() - {"then", "else"}) != 1:
        raise InvalidDefinition(f"{where}: a step is a name or an object with one kind")
    kind = next(iter(step.keys() - {"then", "else"}))
    value = step[kind]
    if kind == "set":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise InvalidDefinition(f"{where}.set: must be an object of values")
        out.append(Instruction("set", where, value))
    elif kind == "wait":
        limit = settings.WORKFLOW_MAX_WAIT_SECONDS
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
            raise InvalidDefinition(f"{where}.wait: seconds, from 0 to {limit}")
        out.append(Instruction("wait", where, float(value)))
    elif kind == "approval":
        if not isinstance(value, str) or not value or len(value) > 100:
            raise InvalidDefinition(f"{where}.approval: the approval's name (1-100 characters)")
        out.append(Instruction("approval", where, value))
    elif kind == "fail":
        out.append(Instruction("fail", where, str(value)[:1000]))
    elif kind == "if":
        _condition(value, f"{where}.if")
        jump_unless = len(out)
        out.append(Instruction("jump_unless", where, value))
        _block(step.get("then", []), f"{where}.then", out, depth=depth + 1)
        if "else" in step:
            jump_over_else = len(out)
            out.append(Instruction("jump", f"{where}.then", None))
            out[jump_unless] = Instruction("jump_unless", where, value, target=len(out))
            _block(step["else"], f"{where}.else", out, depth=depth + 1)
            out[jump_over_else] = Instruction("jump", f"{where}.then", None, target=len(out))
        else:
            out[jump_unless] = Instruction("jump_unless", where, value, target=len(out))
    else:
        raise InvalidDefinition(f"{where}: unknown step kind {kind!r}")
    if kind != "if" and ("then" in step or "else" in step):
        raise InvalidDefinition(f"{where}: only an `if` step has then/else")


def _condition(condition: Any, where: str) -> None:
    if not isinstance(condition, dict):
        raise InvalidDefinition(f"{where}: must be an object")
    sources = condition.keys() & {"input", "value"}
    tests = condition.keys() - {"input", "value"}
    if len(sources) != 1 or not isinstance(condition[next(iter(sources))], str):
        raise InvalidDefinition(f"{where}: names one key, as `input` or `value`")
    if len(tests) != 1 or next(iter(tests)) not in {*_TESTS, "in", "exists"}:
        raise InvalidDefinition(f"{where}: one test of {sorted({*_TESTS, 'in', 'exists'})}")
    if "in" in tests and not isinstance(condition["in"], list):
        raise InvalidDefinition(f"{where}.in: must be a list")


def holds(condition: dict[str, Any], *, input: dict[str, Any], values: dict[str, Any]) -> bool:
    """Whether a (parsed) condition holds; comparing values of different types is False."""
    source = input if "input" in condition else values
    key = condition.get("input", condition.get("value"))
    if "exists" in condition:
        return (key in source) == bool(condition["exists"])
    if key not in source:
        return False
    actual = source[key]
    if "in" in condition:
        return actual in condition["in"]
    (test,) = condition.keys() & _TESTS.keys()
    try:
        return bool(_TESTS[test](actual, condition[test]))
    except TypeError:
        return False
