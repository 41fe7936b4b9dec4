"""The few dbt Jinja globals sqlfluff's `jinja` templater lacks, so macros written for dbt render for linting.

sqlfluff loads this package through `library_path` (dbt/.sqlfluff) and puts its public names in the Jinja
context. It supplies what the project's macros use beyond sqlfluff's dbt builtins:

- ``return(value)``: dbt ends a macro and hands ``value`` (a list, dict or string) to the caller. Here it
  raises an exception that the wrapper installed on ``jinja2.runtime.Macro`` turns into the call's value,
  the way dbt's own macro wrapper does.
- ``var(name, default)``: the project's vars from dbt_project.yml (sqlfluff's builtin answers "item" for
  every var), with a fixed ``as_of_date`` so date validation in macros passes.
- ``modules`` (``re``, ``datetime``, ``itertools``), ``exceptions.raise_compiler_error``, ``execute``
  (False: a linter never runs queries), ``adapter.dispatch`` (``spark__`` then ``default__`` macro).

Nothing here is used by dbt itself: it is a linting aid only.
"""

from __future__ import annotations

import datetime as _datetime
import itertools as _itertools
import re as _re
import sys as _sys
from pathlib import Path as _Path
from types import SimpleNamespace as _Namespace
from typing import Any as _Any

import jinja2.runtime as _runtime
import yaml as _yaml

_PROJECT_VARS: dict[str, _Any] = (
    _yaml.safe_load((_Path(__file__).resolve().parent.parent / "dbt_project.yml").read_text()).get("vars") or {}
)
_LINT_VARS = {"as_of_date": "2025-12-31"}


class _MacroReturnBase(Exception):  # noqa: N818 - mirrors dbt's MacroReturn
    def __init__(self, value: _Any) -> None:
        super().__init__("macro return")
        self.value = value


# sqlfluff imports this package again for every file it lints: the exception class and the wrapper are
# kept on jinja's runtime module so every import raises and catches the same class, and wraps once.
_MacroReturn: type[_MacroReturnBase] = getattr(_runtime, "_mo_macro_return", _MacroReturnBase)


def _return(value: _Any = None) -> _Any:
    raise _MacroReturn(value)


if not hasattr(_runtime, "_mo_macro_return"):
    _runtime._mo_macro_return = _MacroReturn  # type: ignore[attr-defined]
    _original_invoke = _runtime.Macro._invoke

    def _invoke(self, arguments, autoescape):  # type: ignore[no-untyped-def]
        try:
            return _original_invoke(self, arguments, autoescape)
        except _MacroReturn as returned:
            return returned.value

    _runtime.Macro._invoke = _invoke  # type: ignore[method-assign]


def _caller_context() -> _runtime.Context | None:
    frame = _sys._getframe(1)
    while frame is not None:
        context = frame.f_locals.get("context")
        if isinstance(context, _runtime.Context):
            return context
        frame = frame.f_back  # type: ignore[assignment]
    return None


class _Adapter:
    def dispatch(self, name: str, macro_namespace: str | None = None) -> _Any:
        context = _caller_context()
        for candidate in (f"spark__{name}", f"default__{name}", name):
            found = context.resolve_or_missing(candidate) if context is not None else _runtime.missing
            if found is not _runtime.missing:
                return found
        raise NameError(f"no macro {name} (spark__/default__) for adapter.dispatch")


def _raise_compiler_error(message: str) -> None:
    raise RuntimeError(message)


def var(name: str, default: _Any = None) -> _Any:
    if name in _LINT_VARS:
        return _LINT_VARS[name]
    value = _PROJECT_VARS.get(name)
    return default if value is None else value


globals()["return"] = _return
modules = _Namespace(re=_re, datetime=_datetime, itertools=_itertools)
exceptions = _Namespace(raise_compiler_error=_raise_compiler_error, warn=lambda message: "")
execute = False
adapter = _Adapter()
