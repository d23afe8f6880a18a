"""Mutation testing of the protocol core (run it through ``scripts/mutation``; docs/testing.md).

A small mutator over the AST: each mutant is one edit of one module (an operator, a comparison,
a constant, a removed statement, or a field of the register table), loaded in place of the real
module by an import hook. Each mutant's tests run in a forked child that has imported the test
tools but none of the project's code, so the mutant is in force from the first import (the
register table, the CRC table and every cache built at import are built by the mutant). A
mutant that survives is run once more in a fresh interpreter, to rule out anything the fork
carried over.

Prints a summary line per mutant and, per target, a JSON line: killed, survived, score.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator, Mapping, Sequence
import contextlib
import copy
from dataclasses import dataclass, field
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from types import ModuleType

from hypothesis import settings
import pytest

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = "packages/aiodalybalancer/src/aiodalybalancer"

#: Fast protocol tests that decode, encode and re-assemble frames (the CLI and simulator tests
#: run subprocesses and servers: minutes per mutant, and they never check a value by hand).
CORE_TESTS = (
    "packages/aiodalybalancer/tests/test_oracles.py",
    "packages/aiodalybalancer/tests/test_frames.py",
    "packages/aiodalybalancer/tests/test_stream.py",
    "packages/aiodalybalancer/tests/test_completeness.py",
    "packages/aiodalybalancer/tests/test_registers.py",
    "packages/aiodalybalancer/tests/test_fuzz.py",
    "packages/aiodalybalancer/tests/test_client.py",
    "packages/aiodalybalancer/tests/test_write_safety.py",
)
#: The register table and its code: the tests that check values by hand, and the properties
#: (the client tests' simulator is built from the same table, so they cannot be its oracle).
#: docs/registers.md is generated from the table (kinds and block names included) and checked.
TABLE_TESTS = (
    "packages/aiodalybalancer/tests/test_oracles.py",
    "packages/aiodalybalancer/tests/test_registers.py",
    "packages/aiodalybalancer/tests/test_fuzz.py",
    "tests/test_docs.py",
)
#: The library's tests: a `tests` package of their own, so they run in a pytest session of their own.
LIBRARY_TESTS = "packages/aiodalybalancer/"
#: The exchange and the client: over scripted links, the simulator and real ptys.
CLIENT_TESTS = (
    "packages/aiodalybalancer/tests/test_exchange.py",
    "packages/aiodalybalancer/tests/test_client.py",
    "packages/aiodalybalancer/tests/test_client_paths.py",
    "packages/aiodalybalancer/tests/test_write_safety.py",
    "packages/aiodalybalancer/tests/test_transports.py",
)
#: Seconds one test may take before pytest-timeout fails it (the slowest takes about 2 s alone).
PER_TEST_TIMEOUT = 20
#: Functions of registers.py that only build the simulator's register contents (its defaults).
SIMULATOR_HELPERS = frozenset({"_cells", "default_words", "encode_ascii"})
#: Calls whose keyword fields make up the register table.
TABLE_CALLS = frozenset({"Register", "Chemistry", "Block"})
#: Register fields whose edits are excluded, by rule: text and tags that document a fact's source
#: or meaning for people (not behaviour), and the simulator's initial register contents.
_FIELD_RULES = {
    "description": "table documentation (description=)",
    "confidence": "table documentation (confidence=)",
    "default": "simulator's initial contents (default=)",
}
#: Register fields a table edit may not drop (the constructor needs them).
REQUIRED_FIELDS = frozenset({"key", "address", "description", "confidence"})
#: Values that may stand for one another in the table.
SWAPS = {"_ABSENT": "_ABSENT_OR_ZERO", "_ABSENT_OR_ZERO": "_ABSENT"}
KINDS = ("NUMBER", "FLAG", "ENUM", "BITS", "ASCII", "DATE")


@dataclass(frozen=True)
class Target:
    """One file (or one part of it) to mutate, and the tests that must notice."""

    name: str  # the JSON line's "file"
    file: str  # relative to the repository
    scope: str  # "module" (all of it), "functions" (code in functions) or "table" (module-level data)
    tests: tuple[str, ...]
    #: Whether ``--min-score`` applies: False for a target that is measured only (docs/testing.md).
    gated: bool = True

    @property
    def path(self) -> Path:
        return ROOT / self.file


#: Every target: its name on the command line, what it mutates and which tests must notice. The
#: mutant replaces whichever module is imported from the file, under any name.
TARGETS = {
    "frames": Target("frames.py", f"{PROTOCOL}/frames.py", "module", CORE_TESTS),
    "stream": Target("stream.py", f"{PROTOCOL}/stream.py", "module", CORE_TESTS),
    "registers": Target("registers.py (decode/encode code)", f"{PROTOCOL}/registers.py", "functions", TABLE_TESTS),
    "table": Target("registers.py (register table)", f"{PROTOCOL}/registers.py", "table", TABLE_TESTS),
    "exchange": Target("exchange.py", f"{PROTOCOL}/exchange.py", "module", CLIENT_TESTS),
    "client": Target("client.py", f"{PROTOCOL}/client.py", "module", CLIENT_TESTS),
}


# --- generating mutants ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One edit: the index of the node it changes (in ``_walk`` order) and how."""

    index: int
    op: str
    line: int
    what: str
    excluded: str = ""  # the exclusion rule that applies, if any
    table: bool = False  # the table's operators (float x10, int -1)


_BINOPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr,
}
_CMPOPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass
class _Place:
    node: ast.AST
    parent: ast.AST | None
    field: str
    position: int | None  # index in the parent's list field, if any
    ancestors: tuple[ast.AST, ...] = field(default_factory=tuple)


def _walk(tree: ast.AST) -> list[_Place]:
    """Every node with where it hangs, depth first, in a fixed order (copies walk alike)."""
    places: list[_Place] = []

    def visit(node: ast.AST, parent: ast.AST | None, name: str, position: int | None, up: tuple[ast.AST, ...]) -> None:
        places.append(_Place(node, parent, name, position, up))
        for child_field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        visit(item, node, child_field, i, (*up, node))
            elif isinstance(value, ast.AST):
                visit(value, node, child_field, None, (*up, node))

    visit(tree, None, "", None, ())
    return places


def _is_docstring(place: _Place) -> bool:
    node = place.node
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and place.position == 0
        and isinstance(place.parent, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    )


def _is_ellipsis(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node.value.value is Ellipsis


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return f"{ast.unparse(func.value)}.{func.attr}"
    return ""


def _skipped(place: _Place) -> bool:
    """Never mutated (not counted): docstrings, annotations, decorators, type aliases."""
    chain = (*place.ancestors, place.node)
    for child, parent in zip(chain[1:], chain, strict=False):
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and (
            child in parent.decorator_list or child is getattr(parent, "returns", None)
        ):
            return True
        if isinstance(parent, ast.arg) and child is parent.annotation:
            return True
        if isinstance(parent, ast.AnnAssign) and child is parent.annotation:
            return True
        if isinstance(parent, ast.TypeAlias):
            return True
    return any(_is_docstring(_Place(a, p, "", i)) for a, p, i in _docstring_chain(place))


def _docstring_chain(place: _Place) -> list[tuple[ast.AST, ast.AST | None, int | None]]:
    # The node itself or an ancestor that is a docstring statement.
    chain = (*place.ancestors, place.node)
    out: list[tuple[ast.AST, ast.AST | None, int | None]] = []
    for i in range(1, len(chain)):
        parent, child = chain[i - 1], chain[i]
        body = getattr(parent, "body", None)
        if isinstance(body, list) and body and body[0] is child:
            out.append((child, parent, 0))
    return out


def _message_rule(place: _Place) -> str:
    """The exclusion rule for a string that is only message text, or ''."""
    for ancestor in place.ancestors:
        if isinstance(ancestor, ast.Raise):
            return "error message text"
        name = _call_name(ancestor)
        if name.endswith("Error") or name.startswith("_LOGGER."):
            return "error message text" if name.endswith("Error") else "log message text"
    return ""


def _in_scope(place: _Place, scope: str) -> bool:
    ups = place.ancestors
    functions = [a for a in ups if isinstance(a, ast.FunctionDef | ast.AsyncFunctionDef)]
    classes = [a for a in ups if isinstance(a, ast.ClassDef)]
    if scope == "module":
        return True
    if scope == "functions":
        return bool(functions)
    # The table: module-level data (constants, the register list, chemistry, blocks, fault
    # names), not functions, classes or enums.
    return not functions and not classes and len(ups) >= 2


def _table_keyword(place: _Place) -> str | None:
    """The table field a node is the value of (``Register(scale=...)`` → "scale"), or None."""
    for i in range(len(place.ancestors) - 1, 0, -1):
        ancestor = place.ancestors[i]
        if isinstance(ancestor, ast.keyword):
            call = place.ancestors[i - 1]
            if _call_name(call) in TABLE_CALLS:
                return ancestor.arg
            return None
    return None


def _replace_constant(value: object, table: bool) -> list[tuple[object, str]]:
    if isinstance(value, bool):
        return [(not value, f"{value} -> {not value}")]
    if isinstance(value, int):
        return [(value + 1, f"{value} -> {value + 1}")]
    if isinstance(value, float):
        if table:  # ten times too big, and one more in the last written digit (3.8 -> 3.9)
            digits = len(repr(value).split(".")[1])
            bumped = round(value + 10**-digits, digits)
            return [(value * 10, f"{value} -> {value * 10:g}"), (bumped, f"{value} -> {bumped:g}")]
        return [(value + 1, f"{value} -> {value + 1:g}")]
    if isinstance(value, str):
        return [(f"XX{value}XX", f"{value!r} -> 'XX…XX'")]
    return []


def generate(tree: ast.Module, scope: str) -> list[Mutant]:
    """Every mutant of ``tree`` in ``scope``."""
    mutants: list[Mutant] = []
    table = scope == "table"
    for index, place in enumerate(_walk(tree)):
        node = place.node
        if not _in_scope(place, scope) or _skipped(place):
            continue
        line = getattr(node, "lineno", 0)

        keyword = node.arg if isinstance(node, ast.keyword) else _table_keyword(place) if table else None
        field_rule = _FIELD_RULES.get(keyword or "", "")
        if any(getattr(a, "name", None) in SIMULATOR_HELPERS for a in place.ancestors):
            field_rule = "builds the simulator's contents"
        if any(isinstance(a, ast.JoinedStr) for a in place.ancestors):  # inside an f-string
            field_rule = field_rule or _message_rule(place)

        def add(
            op: str, what: str, excluded: str = "", *, index: int = index, line: int = line, rule: str = field_rule
        ) -> None:
            mutants.append(Mutant(index, op, line, what, excluded or rule, table))

        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            add("binop", f"{type(node.op).__name__} -> {_BINOPS[type(node.op)].__name__}")
        elif isinstance(node, ast.AugAssign):
            if type(node.op) in _BINOPS:
                add("binop", f"{type(node.op).__name__}= -> {_BINOPS[type(node.op)].__name__}=")
            add("remove", "statement removed")
        elif isinstance(node, ast.Compare):
            for i, cmp in enumerate(node.ops):
                if type(cmp) in _CMPOPS:
                    add(f"cmp{i}", f"{type(cmp).__name__} -> {_CMPOPS[type(cmp)].__name__}")
        elif isinstance(node, ast.BoolOp):
            add("boolop", "and <-> or")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            add("unary", f"{type(node.op).__name__} removed")
        elif isinstance(node, ast.Break | ast.Continue):
            add("flow", "break <-> continue")
        elif isinstance(node, ast.Return) and node.value is not None and not table:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                add("return", "returns None")
        elif isinstance(node, ast.Expr | ast.Delete) and not _is_docstring(place) and not _is_ellipsis(node):
            logging_only = isinstance(node, ast.Expr) and _call_name(node.value).startswith("_LOGGER.")
            add("remove", "statement removed", "log message text" if logging_only else "")
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Attribute | ast.Subscript) for t in node.targets):
            add("remove", "assignment removed")
        elif isinstance(node, ast.Constant):
            for n, (_, what) in enumerate(_replace_constant(node.value, table)):
                excluded = _message_rule(place) if isinstance(node.value, str) else ""
                add(f"const{n}", what, excluded)
        elif isinstance(node, ast.JoinedStr):
            add("fstring", "f-string text changed", _message_rule(place) or "")
        elif table and isinstance(node, ast.Name) and node.id in SWAPS:
            add("swap", f"{node.id} -> {SWAPS[node.id]}")
        elif table and isinstance(node, ast.Attribute) and node.attr in KINDS and ast.unparse(node.value) == "Kind":
            add("kind", f"Kind.{node.attr} -> another kind")
        elif (
            table
            and isinstance(node, ast.keyword)
            and _call_name(place.parent) in TABLE_CALLS
            and node.arg not in REQUIRED_FIELDS
        ):
            add("drop", f"field {node.arg}= removed")
        if table and isinstance(node, ast.Tuple) and len(node.elts) > 1:
            elts = node.elts
            for i in range(len(elts) - 1):
                a, b = elts[i], elts[i + 1]
                if (
                    isinstance(a, ast.Constant)
                    and isinstance(b, ast.Constant)
                    and isinstance(a.value, str)
                    and a.value != b.value
                ):
                    add(f"swap{i}", f"{a.value!r} <-> {b.value!r}", line=getattr(a, "lineno", line))
    # Table mutants inside Register(...) get the field they edit in their description.
    if table:
        places = _walk(tree)
        mutants = [
            Mutant(m.index, m.op, m.line, _describe_field(places[m.index], m.what), m.excluded, m.table)
            for m in mutants
        ]
    return mutants


def _describe_field(place: _Place, what: str) -> str:
    keyword = _table_keyword(place)
    key = ""
    for ancestor in place.ancestors:
        if _call_name(ancestor) == "Register":
            assert isinstance(ancestor, ast.Call)
            key = next((ast.literal_eval(k.value) for k in ancestor.keywords if k.arg == "key"), "")
    if isinstance(place.node, ast.Call) and _call_name(place.node) == "Register":
        key = next((ast.literal_eval(k.value) for k in place.node.keywords if k.arg == "key"), "")
    if isinstance(place.node, ast.keyword) and isinstance(place.parent, ast.Call):
        key = next((ast.literal_eval(k.value) for k in place.parent.keywords if k.arg == "key"), key)
    where = f"{key}." if key else ""
    return f"{where}{keyword}: {what}" if keyword else f"{where}{what}"


def apply(tree: ast.Module, mutant: Mutant) -> ast.Module:
    """A copy of ``tree`` with ``mutant`` applied."""
    tree = copy.deepcopy(tree)
    place = _walk(tree)[mutant.index]
    node, op = place.node, mutant.op
    replacement: ast.AST | None = None
    if op == "binop":
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = _BINOPS[type(node.op)]()
    elif op.startswith("cmp"):
        assert isinstance(node, ast.Compare)
        i = int(op[3:])
        node.ops[i] = _CMPOPS[type(node.ops[i])]()
    elif op == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif op == "unary":
        assert isinstance(node, ast.UnaryOp)
        replacement = node.operand
    elif op == "flow":
        replacement = ast.Continue() if isinstance(node, ast.Break) else ast.Break()
    elif op == "return":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(None)
    elif op == "remove":
        replacement = ast.Pass()
    elif op.startswith("const"):
        assert isinstance(node, ast.Constant)
        node.value = _replace_constant(node.value, mutant.table)[int(op[5:])][0]
    elif op == "fstring":
        assert isinstance(node, ast.JoinedStr)
        node.values.insert(0, ast.Constant("XX"))
    elif op == "swap":
        assert isinstance(node, ast.Name)
        node.id = SWAPS[node.id]
    elif op == "kind":
        assert isinstance(node, ast.Attribute)
        node.attr = KINDS[(KINDS.index(node.attr) + 1) % len(KINDS)]
    elif op == "drop":
        assert isinstance(place.parent, ast.Call) and place.position is not None
        del place.parent.keywords[place.position]
    elif op.startswith("swap"):
        assert isinstance(node, ast.Tuple)
        i = int(op[4:])
        node.elts[i], node.elts[i + 1] = node.elts[i + 1], node.elts[i]
    else:  # pragma: no cover
        raise ValueError(op)
    if replacement is not None:
        assert place.parent is not None
        if place.position is None:
            setattr(place.parent, place.field, replacement)
        else:
            getattr(place.parent, place.field)[place.position] = replacement
    return ast.fix_missing_locations(tree)


# --- running one mutant ----------------------------------------------------------------------


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Loads the module imported from the target's file from the mutant's source instead.

    Matched by file, not by name: scripts/gen_register_docs.py (which tests/test_docs.py runs)
    imports the protocol package as a top-level package, so one file has two module names.
    """

    def __init__(self, source: str, path: Path) -> None:
        self.source, self.path = source, path

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.rpartition(".")[2] != self.path.stem:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or Path(spec.origin).resolve() != self.path:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(compile(self.source, str(self.path), "exec"), module.__dict__)


def _pytest_args(tests: tuple[str, ...], *, first_failure: bool) -> list[str]:
    # A mutant that makes a loop endless fails the test it hangs after PER_TEST_TIMEOUT seconds.
    args = [*tests, "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-o", "addopts=", "--no-header"]
    args += ["-o", f"timeout={PER_TEST_TIMEOUT}"]
    return [*args, "-x"] if first_failure else args


def _run_tests(target: Target, source: str | None, *, first_failure: bool, quiet: bool = True) -> int:
    """Run the target's tests in this process with ``source`` in place of the module."""
    if source is not None:
        sys.meta_path.insert(0, _MutantFinder(source, target.path))
    settings.register_profile("mutation", database=None)
    settings.load_profile("mutation")
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    code = 0
    for tests in _sessions(target.tests):
        code = code or int(pytest.main(_pytest_args(tests, first_failure=first_failure)))
        if code and first_failure:
            break
    return code


def _sessions(tests: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The library's tests and the repository's, one session each (both folders are a ``tests``
    package); the modules of one session are forgotten before the next imports its own."""
    library = tuple(t for t in tests if t.startswith(LIBRARY_TESTS))
    sessions = [group for group in (library, tuple(t for t in tests if t not in library)) if group]
    for index, group in enumerate(sessions):
        if index:
            _forget_ours()
        yield group


def _fork(target: Target, source: str | None) -> int:
    """Start the tests in a forked child (its own process group); returns its pid."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            os.setpgid(0, 0)
            code = _run_tests(target, source, first_failure=True)
        finally:
            os._exit(code)
    return pid


def _fresh(target_key: str, mutant_index: int) -> subprocess.Popen[bytes]:
    """Start one mutant's tests in a new interpreter (all of them, not only to the first failure)."""
    command = [sys.executable, __file__, "--one", target_key, str(mutant_index)]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


@dataclass
class _Job:
    mutant: Mutant | None
    started: float
    pid: int = 0
    process: subprocess.Popen[bytes] | None = None

    def poll(self) -> int | None:
        if self.process is not None:
            return self.process.poll()
        done, status = os.waitpid(self.pid, os.WNOHANG)
        return os.waitstatus_to_exitcode(status) if done else None

    def kill(self) -> None:
        pid = self.process.pid if self.process is not None else self.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        else:
            os.waitpid(self.pid, 0)


def _pool(
    starts: list[tuple[Mutant | None, object]], jobs: int, timeout: float
) -> list[tuple[Mutant | None, int | None, float]]:
    """Run ``(mutant, start)`` jobs, ``jobs`` at a time; (mutant, exit code or None on timeout, s)."""
    queue = list(starts)
    running: list[_Job] = []
    results: list[tuple[Mutant | None, int | None, float]] = []
    while queue or running:
        while queue and len(running) < jobs:
            mutant, start = queue.pop(0)
            started = time.monotonic()
            launched = start()  # type: ignore[operator]
            job = _Job(mutant, started)
            if isinstance(launched, int):
                job.pid = launched
            else:
                job.process = launched
            running.append(job)
        time.sleep(0.02)
        for job in list(running):
            code = job.poll()
            elapsed = time.monotonic() - job.started
            if code is None and elapsed > timeout:
                job.kill()
            elif code is None:
                continue
            running.remove(job)
            results.append((job.mutant, code, elapsed))
    return results


def _preload(tests: tuple[str, ...]) -> None:
    """Import Home Assistant, pytest's plugins and the test tools once (a collect-only run in a
    child would otherwise redo it for every mutant), then forget every module of the project, so
    each forked child imports the project afresh (and whichever module the target's file is)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1), os.dup(2)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        for session in _sessions(tests):
            pytest.main([*_pytest_args(session, first_failure=True), "--collect-only"])
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    _forget_ours()


def _forget_ours() -> None:
    """Drop the repository's modules from sys.modules: the next import loads them afresh."""
    for name in [name for name, module in sys.modules.items() if _ours(module)]:
        del sys.modules[name]


def _ours(module: ModuleType | None) -> bool:
    """A module of the repository (the project, its tools and tests), not of the environment."""
    file = getattr(module, "__file__", None)
    if not file:
        return False
    path = Path(file).resolve()
    return (
        path.is_relative_to(ROOT)
        and not path.is_relative_to(Path(sys.prefix).resolve())
        and path != Path(__file__).resolve()
    )


# --- the command -----------------------------------------------------------------------------


def _mutants(target: Target) -> tuple[ast.Module, list[Mutant]]:
    tree = ast.parse(target.path.read_text(), str(target.path))
    return tree, generate(tree, target.scope)


def run_target(key: str, *, limit: int | None, jobs: int, verbose: bool) -> dict[str, object]:
    """Run every mutant of one target; its summary."""
    target = TARGETS[key]
    tree, mutants = _mutants(target)
    excluded = [m for m in mutants if m.excluded]
    active = [m for m in mutants if not m.excluded][:limit]
    ((_, code, baseline),) = _pool([(None, lambda: _fork(target, None))], 1, timeout=600)
    if code != 0:
        raise SystemExit(f"{target.name}: the tests fail without any mutant (exit {code})")
    timeout = max(20.0, 5 * baseline)

    def forked(mutant: Mutant) -> object:
        source = ast.unparse(apply(tree, mutant))
        return lambda: _fork(target, source)

    outcome: dict[Mutant, str] = {}
    for mutant, code, seconds in _pool([(m, forked(m)) for m in active], jobs, timeout):
        assert mutant is not None
        outcome[mutant] = "survived" if code == 0 else "timeout" if code is None else "killed"
        if len(outcome) % 25 == 0:
            print(f"{target.name}: {len(outcome)}/{len(active)} mutants run", file=sys.stderr, flush=True)
        if verbose:
            print(f"{outcome[mutant]:8} line {mutant.line}: {mutant.what} ({seconds:.1f} s)", flush=True)
    # Survivors once more, each in a fresh interpreter and through every test.
    again = [(m, (lambda m=m: _fresh(key, mutants.index(m)))) for m in active if outcome[m] == "survived"]
    for mutant, code, _ in _pool(again, jobs, 3 * timeout):
        assert mutant is not None
        if code != 0:
            outcome[mutant] = "killed (fresh interpreter)"
        print(f"{outcome[mutant]:8} line {mutant.line}: {mutant.what}", flush=True)
    rules: dict[str, int] = {}
    for mutant in excluded:
        rules[mutant.excluded] = rules.get(mutant.excluded, 0) + 1
    survived = sum(1 for state in outcome.values() if state == "survived")
    killed = len(outcome) - survived
    return {
        "file": target.name,
        "mutants": len(mutants),
        "excluded": rules,
        "killed": killed,
        "timeouts": sum(1 for state in outcome.values() if state == "timeout"),
        "survived": survived,
        "score": round(100 * killed / len(outcome), 1) if outcome else None,
    }


def below_minimum(results: Sequence[Mapping[str, object]], minimum: float) -> list[str]:
    """The targets whose score is below ``minimum`` (a target without mutants has no score)."""
    return [
        f"{result['file']}: {score} %"
        for result in results
        if isinstance(score := result["score"], int | float) and score < minimum
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"what to mutate: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--limit", type=int, help="run only the first N mutants of each target")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every mutant's outcome")
    parser.add_argument(
        "--min-score", type=float, metavar="PERCENT", help="exit 1 when a target's score is below PERCENT"
    )
    parser.add_argument("--one", nargs=2, metavar=("TARGET", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    if args.one:
        target = TARGETS[args.one[0]]
        tree, mutants = _mutants(target)
        source = ast.unparse(apply(tree, mutants[int(args.one[1])]))
        return _run_tests(target, source, first_failure=False)
    keys = args.targets or list(TARGETS)
    if unknown := set(keys) - set(TARGETS):
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    if args.list:
        for key in keys:
            for mutant in _mutants(TARGETS[key])[1]:
                rule = f"  [excluded: {mutant.excluded}]" if mutant.excluded else ""
                print(f"{key}: line {mutant.line}: {mutant.what}{rule}")
        return 0
    _preload(tuple(dict.fromkeys(test for key in keys for test in TARGETS[key].tests)))
    gated = []
    for key in keys:
        result = run_target(key, limit=args.limit, jobs=args.jobs, verbose=args.verbose)
        print(json.dumps(result), flush=True)
        if TARGETS[key].gated:
            gated.append(result)
        elif args.min_score is not None:
            print(f"{result['file']}: measured, not gated (docs/testing.md)", file=sys.stderr, flush=True)
    if args.min_score is not None and (below := below_minimum(gated, args.min_score)):
        print(f"below the minimum score of {args.min_score:g} %: {'; '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
