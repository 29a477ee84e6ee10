"""The registry of step kinds: what a ``kind = "..."`` in a pipeline file runs.

Adding a kind is one function (or class) and one dataclass::

    @dataclass(frozen=True)
    class TrainParams:
        training_set: str                  # required key
        label: str = "churned"             # optional key with its default
        models: list[str] = field(default_factory=lambda: ["logistic_regression"])

    @step_kind("train")
    def train(ctx: StepContext, params: TrainParams) -> str | None:
        '''Train models on a training set (the first docstring line is the kind's summary).'''
        data = ctx.read(params.training_set)       # records the input table and its version
        ...
        ctx.wrote("ml.predictions", version)       # records an output table and its version
        return "3 models, best auc 0.86"           # optional one-line result shown by the CLI

The function's second parameter's annotation is the params dataclass: the pipeline file is
validated against it before anything runs (unknown, missing or mistyped keys; rules across
keys go in the dataclass' ``__post_init__``). A class works too: ``@step_kind("x")`` on a class
whose no-argument instance has ``run(self, ctx, params)``. Put built-in kinds in a module of
``lakeloom.pipelines.kinds`` and import it in that package's ``__init__``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from lakeloom.errors import InvalidArgument

if TYPE_CHECKING:
    from lakeloom.engines.base import Frame
    from lakeloom.workspace import Workspace

__all__ = [
    "StepContext",
    "StepFn",
    "StepKind",
    "TableVersion",
    "get_kind",
    "registered_kinds",
    "step_kind",
]

#: A step's body: gets the context and its checked params, returns an optional summary line.
StepFn = Callable[["StepContext", Any], "str | None"]
F = TypeVar("F", bound=Callable[..., Any] | type)


@dataclass(frozen=True)
class TableVersion:
    """A table a step read or wrote, at the version it saw or made."""

    table: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {"table": self.table, "version": self.version}


@dataclass
class StepContext:
    """What a step gets besides its params: the workspace, and where to record its I/O."""

    workspace: Workspace
    pipeline: str
    step: str
    run_id: str
    inputs: list[TableVersion] = field(default_factory=list)
    outputs: list[TableVersion] = field(default_factory=list)

    def used(self, table: str) -> TableVersion:
        """Record that the step reads ``table`` (at its current version)."""
        found = TableVersion(table, self.workspace.tables.version(table))
        if found not in self.inputs:
            self.inputs.append(found)
        return found

    def read(self, table: str) -> Frame:
        """Read ``table`` at its latest version, recording it as an input."""
        seen = self.used(table)
        return self.workspace.tables.read(table, version=seen.version)

    def wrote(self, table: str, version: int) -> None:
        """Record that the step wrote ``table``, making ``version``."""
        self.outputs = [o for o in self.outputs if o.table != table]
        self.outputs.append(TableVersion(table, version))


@dataclass(frozen=True)
class StepKind:
    """A registered kind: its name, params dataclass and body."""

    name: str
    params: type[Any]
    run: StepFn
    summary: str


_REGISTRY: dict[str, StepKind] = {}


def _params_type(fn: Callable[..., Any], where: str) -> type[Any]:
    hints = typing.get_type_hints(fn)
    names = [p for p in inspect.signature(fn).parameters if p != "self"]
    if len(names) != 2 or names[1] not in hints:
        raise TypeError(f"{where} must take (ctx, params: SomeParams) with params annotated")
    return typing.cast(type[Any], hints[names[1]])


def step_kind(name: str) -> Callable[[F], F]:
    """Register the decorated function or class as the step kind ``name``."""
    if not name.isidentifier():
        raise ValueError(f"step kind name {name!r} must be an identifier")

    def register(obj: F) -> F:
        if isinstance(obj, type):
            run = obj().run
            where = f"{obj.__qualname__}.run"
        else:
            run = obj
            where = getattr(obj, "__qualname__", name)
        params = _params_type(run, where)
        doc = inspect.getdoc(obj) or ""
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"step kind {name!r} is registered twice")
        _REGISTRY[name] = StepKind(name, params, run, doc.splitlines()[0] if doc else "")
        return obj

    return register


def _load_builtin() -> None:
    import lakeloom.pipelines.kinds  # noqa: F401  (registers the built-in kinds)


def registered_kinds() -> dict[str, StepKind]:
    """Every registered kind, by name."""
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def get_kind(name: str) -> StepKind:
    """The kind called ``name``; raises ``InvalidArgument`` listing the known kinds."""
    known = registered_kinds()
    if name not in known:
        raise InvalidArgument(f"unknown kind {name!r}; known kinds: {', '.join(known)}")
    return known[name]
