"""Pipeline files: parse a TOML file and validate all of it before anything runs.

The format (``examples/churn/pipeline.toml`` is a commented example)::

    name = "churn"                      # required
    description = "..."                 # optional

    [params]                            # optional defaults, overridden by --param k=v
    customers = 5000

    [[steps]]                           # run in file order
    name = "generate"                   # unique
    kind = "generate_churn"             # a registered kind (lakeloom.pipelines.steps)
    customers = "${params.customers}"   # the kind's own keys
    engines = ["spark"]                 # optional: run only on these engines (else skipped)

A value that is exactly ``"${params.x}"`` takes the param's value and type; inside a longer
string the param is formatted into it. Every error names the file, the step and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeloom.errors import InvalidArgument, PipelineError
from lakeloom.pipelines.params import ParamsError, build_params
from lakeloom.pipelines.steps import get_kind, registered_kinds

__all__ = ["PipelineSpec", "StepSpec", "load_pipeline", "parse_param_overrides"]

_TOP_KEYS = ("name", "description", "params", "steps")
_REF = re.compile(r"\$\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class StepSpec:
    """One validated step: its name, kind, position and checked params."""

    name: str
    kind: str
    index: int
    params: Any
    #: The step's keys after ``${params.*}`` substitution (without name and kind).
    values: Mapping[str, Any] = field(default_factory=dict)
    #: Engines the step runs on (``engines = ["spark"]``); empty: every engine.
    engines: tuple[str, ...] = ()


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline file."""

    name: str
    path: str
    description: str
    params: Mapping[str, Any]
    steps: tuple[StepSpec, ...]

    def step_names(self) -> list[str]:
        """The steps' names, in order."""
        return [s.name for s in self.steps]

    def select(self, *, from_step: str | None = None, only: str | None = None) -> list[StepSpec]:
        """The steps to run: all, ``from_step`` and the ones after it, or ``only`` one."""
        if from_step is not None and only is not None:
            raise PipelineError("pass --from or --only, not both")
        for option, value in (("--from", from_step), ("--only", only)):
            if value is not None and value not in self.step_names():
                raise PipelineError(
                    f"{self.path}: {option} names step {value!r}, which does not exist; "
                    f"steps: {', '.join(self.step_names())}"
                )
        if only is not None:
            return [s for s in self.steps if s.name == only]
        if from_step is not None:
            start = self.step_names().index(from_step)
            return list(self.steps[start:])
        return list(self.steps)


def parse_param_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["customers=500", "as_of=2026-01-01"]`` to typed values (TOML syntax, else text)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InvalidArgument(f"--param {pair!r} must look like name=value")
        try:
            out[key] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


def _substitute(value: Any, params: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, list):
        return [_substitute(v, params, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, params, where) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    for ref in _REF.findall(value):
        if ref not in params:
            known = ", ".join(params) or "none defined"
            raise PipelineError(f"{where} refers to ${{params.{ref}}}; params: {known}")
    whole = _REF.fullmatch(value)
    if whole:
        return params[whole.group(1)]
    return _REF.sub(lambda m: str(params[m.group(1)]), value)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise PipelineError(f"pipeline file {path} {what}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{path} is not a UTF-8 text file") from None


def _step(raw: Any, index: int, path: str, params: Mapping[str, Any]) -> StepSpec:
    label = f"{path}: step {index + 1}"
    if not isinstance(raw, dict):
        raise PipelineError(f"{label} must be a table ([[steps]])")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PipelineError(
            f"{label}: key 'name' must be a string of letters, digits, '_', '-' or '.', "
            f"got {name!r}"
        )
    label = f"{path}: step {name!r}"
    kind_name = raw.get("kind")
    if not isinstance(kind_name, str):
        known = ", ".join(registered_kinds())
        raise PipelineError(
            f"{label}: key 'kind' must be a string, one of {known}; got {kind_name!r}"
        )
    try:
        kind = get_kind(kind_name)
    except InvalidArgument as exc:
        raise PipelineError(f"{label}: {exc}") from None
    label = f"{label} (kind {kind_name})"
    engines = _engines(raw.get("engines"), label)
    values = {
        key: _substitute(value, params, f"{label}: key {key!r}")
        for key, value in raw.items()
        if key not in ("name", "kind", "engines")
    }
    try:
        checked = build_params(kind.params, values)
    except ParamsError as exc:
        raise PipelineError(f"{label}: {exc}") from None
    return StepSpec(
        name=name, kind=kind_name, index=index, params=checked, values=values, engines=engines
    )


def _engines(value: Any, label: str) -> tuple[str, ...]:
    """The step's ``engines`` key: which engines it runs on (any when absent)."""
    from lakeloom.settings import ENGINES

    if value is None:
        return ()
    if not isinstance(value, list) or not value or any(e not in ENGINES for e in value):
        raise PipelineError(
            f"{label}: key 'engines' must be a list of engine names ({', '.join(ENGINES)}), "
            f"got {value!r}"
        )
    return tuple(value)


def load_pipeline(
    path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> PipelineSpec:
    """Parse and validate the pipeline file at ``path``; ``overrides`` replace ``[params]``.

    Raises :class:`~lakeloom.errors.PipelineError` naming the file, step and key at fault.
    """
    file = Path(path).expanduser()
    label = str(file)
    data = _read(file)
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise PipelineError(
            f"{label}: unknown top-level key {unknown[0]!r}; allowed: {', '.join(_TOP_KEYS)} "
            "(step keys go under [[steps]])"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PipelineError(f"{label}: key 'name' (the pipeline's name) must be a string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise PipelineError(f"{label}: key 'description' must be a string")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise PipelineError(f"{label}: 'params' must be a table ([params])")
    params = dict(params)
    for key, value in (overrides or {}).items():
        if key not in params:
            known = ", ".join(params) or "none defined"
            raise PipelineError(
                f"{label}: --param {key} is not a param of the file; params: {known}"
            )
        params[key] = value
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise PipelineError(f"{label}: no steps; add at least one [[steps]] table")
    steps = [_step(raw, i, label, params) for i, raw in enumerate(steps_raw)]
    seen: dict[str, int] = {}
    for step in steps:
        if step.name in seen:
            raise PipelineError(
                f"{label}: step name {step.name!r} is used twice (steps {seen[step.name] + 1} "
                f"and {step.index + 1}); step names must be unique"
            )
        seen[step.name] = step.index
    return PipelineSpec(
        name=name.strip(),
        path=label,
        description=description,
        params=params,
        steps=tuple(steps),
    )
