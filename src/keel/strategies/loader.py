"""Strategies of one's own: loaded from a Python file, a module, or an installed package's entry point.

- `path/to/file.py:ClassName`: the file is run as a module of its own (it is not put on `sys.path`, so it cannot
  import files next to it: a strategy that needs several modules belongs in a package);
- `package.module:ClassName`: the module is imported from the environment;
- `name`: an entry point `name = "package.module:ClassName"` in the `keel.strategies` group of an installed package.

Loading runs the code it loads, with the rights of whoever runs `keel`: load only code you trust.

The class is checked against the strategy contract (a `Strategy` subclass with a lowercase `name`, `Params` refusing
unknown fields, `make_rules` and `signals`); every problem is reported at once as an `InputError` naming the file
and the class (exit 2). The class gets `source` — its kind, its class and a sha256 of the code — which joins
`describe()` and so the run id: editing the file makes another run. A file or module is hashed alone; what it
imports is not (an entry point's package version is). The class returned wraps `signals` so that an exception or a
result that breaks the contract is reported naming the file and line, not as a crash.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import re
import sys
import traceback
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keel.data.frame import OHLCV
from keel.domain.errors import InputError, KeelError
from keel.strategies.base import Signals, Strategy, StrategyParams

__all__ = [
    "ENTRY_POINT_GROUP",
    "checked_signals",
    "entry_point_names",
    "instantiate",
    "is_reference",
    "load_file",
    "load_module",
    "resolve",
]

ENTRY_POINT_GROUP = "keel.strategies"
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_HINT_CONTRACT = "a strategy subclasses keel.strategies.Strategy; see docs/research/strategies.md"
# (resolved path, sha256) → the checked class, so a file is run once per process however often it is named
_FILES: dict[tuple[str, str, str], type[Strategy]] = {}
_MODULES: dict[tuple[str, str], type[Strategy]] = {}
_ENTRY_POINTS: dict[tuple[str, str, str], type[Strategy]] = {}


def is_reference(text: str) -> bool:
    """Whether `text` names a file or a module and a class (rather than a registered name or an entry point)."""
    return ":" in text or text.endswith(".py") or "/" in text or "\\" in text


def resolve(reference: str) -> type[Strategy] | None:
    """The class a file, module or entry-point reference names; None when it is none of them (an unknown name)."""
    if is_reference(reference):
        where, sep, attr = reference.rpartition(":")
        if not sep or not attr or _looks_like_path(attr):  # no class named (`file.py`, or a Windows drive only)
            raise InputError(
                f"strategy '{reference}': name the class too, as path/to/file.py:ClassName",
                hint="the file may define several classes; Keel loads the one you name",
            )
        if not attr.isidentifier():
            raise InputError(f"strategy '{reference}': '{attr}' is not a class name", hint=_HINT_CONTRACT)
        if _looks_like_path(where) or Path(where).expanduser().exists():
            return load_file(Path(where).expanduser(), attr)
        if _MODULE.fullmatch(where):
            return load_module(where, attr)
        raise InputError(
            f"strategy '{reference}': '{where}' is neither a Python file nor a module name",
            hint="give path/to/file.py:ClassName or package.module:ClassName",
        )
    return _from_entry_point(reference)


def load_file(path: Path, class_name: str) -> type[Strategy]:
    """Run `path` as a module of its own and return its checked `class_name`."""
    shown = str(path)
    if not path.exists():
        raise InputError(
            f"strategy file '{shown}' does not exist",
            hint="check the path; a relative path starts from the current directory",
        )
    if path.is_dir():
        raise InputError(f"strategy file '{shown}' is a directory", hint="name a .py file: path/to/file.py:ClassName")
    if path.suffix != ".py":
        raise InputError(
            f"strategy file '{shown}' is not a Python file (.py)", hint="name a .py file: path/to/file.py:ClassName"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"strategy file '{shown}' cannot be read: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    key = (str(path.resolve()), digest, class_name)
    cached = _FILES.get(key)
    if cached is not None:
        return cached
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"strategy file '{shown}' is not UTF-8 text (byte {exc.start})") from None
    try:
        code = compile(text, shown, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = f", line {exc.lineno}" if exc.lineno else ""
        source_line = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
        raise InputError(
            f"strategy file '{shown}'{line}: syntax error: {exc.msg}{source_line}",
            hint="fix the file and run again; nothing was run",
        ) from None
    module_name = f"keel_user_strategy_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest[:12]}"
    module = sys.modules.get(module_name)
    if module is None:
        module = types.ModuleType(module_name, f"Keel strategy file {shown}")
        module.__file__ = str(path)
        sys.modules[module_name] = module  # pydantic resolves the annotations of a model through its module
        try:
            exec(code, module.__dict__)  # loading a strategy file runs it (documented)
        except BaseException as exc:
            del sys.modules[module_name]
            if not isinstance(exc, Exception):
                raise
            raise InputError(
                f"strategy file '{shown}'{_line_in(exc, shown)}: running it raised {_one_line(exc)}",
                hint=_import_hint(exc),
            ) from None
    where = f"{shown}:{class_name}"
    cls = _find_class(module, class_name, where, shown)
    checked = _checked_class(cls, where, {"kind": "file", "class": class_name, "sha256": digest})
    _FILES[key] = checked
    return checked


def load_module(module_name: str, class_name: str) -> type[Strategy]:
    """Import `module_name` from the environment and return its checked `class_name`."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise InputError(
            f"strategy module '{module_name}' cannot be imported: {_one_line(exc)}", hint=_import_hint(exc)
        ) from None
    where = f"{module_name}:{class_name}"
    digest = _source_digest(module)
    cached = _MODULES.get((where, digest))
    if cached is not None:
        return cached
    cls = _find_class(module, class_name, where, module_name)
    checked = _checked_class(cls, where, {"kind": "module", "class": where, "sha256": digest})
    _MODULES[(where, digest)] = checked
    return checked


def entry_point_names() -> list[str]:
    """The names of the installed packages' strategies (entry points of the `keel.strategies` group), sorted."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def _from_entry_point(name: str) -> type[Strategy] | None:
    found = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        return None
    values = sorted({ep.value for ep in found})
    if len(values) > 1:
        raise InputError(
            f"strategy '{name}' is declared by several installed packages: {', '.join(values)}",
            hint="uninstall one, or name the class directly as package.module:ClassName",
        )
    ep = found[0]
    dist = getattr(ep, "dist", None)
    package = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
    module_name, _, attr = ep.value.partition(":")
    attr = attr.strip()
    if not attr or not _MODULE.fullmatch(module_name.strip()):
        raise InputError(
            f"entry point '{name}' of {package} is '{ep.value}', not package.module:ClassName",
            hint=f'fix the [project.entry-points."{ENTRY_POINT_GROUP}"] table of that package',
        )
    cls = load_module(module_name.strip(), attr)
    assert cls.source is not None
    key = (f"{name} = {ep.value}", package, cls.source["sha256"])
    known = _ENTRY_POINTS.get(key)
    if known is None:
        source = {"kind": "entry_point", "entry_point": key[0], "package": package, "sha256": key[2]}
        where = f"{ep.value} (entry point '{name}' of {package})"
        known = _ENTRY_POINTS[key] = _checked_class(cls.__wrapped__, where, source)  # type: ignore[attr-defined]
    return known


def instantiate(cls: type[Strategy], params: StrategyParams, reference: str) -> Strategy:
    """`cls(params)` for a loaded class: a failure of its `make_rules` is the user's to fix (exit 2), not a crash."""
    try:
        return cls(params)
    except KeelError:
        raise
    except Exception as exc:
        where = getattr(cls, "__keel_where__", reference)
        raise InputError(
            f"strategy {where}: its rules are not valid with these parameters: {_one_line(exc)}",
            hint="make_rules must return StrategyRules with every rule in words and a stop policy "
            "(requires_stop=True, or stop_waived=True with a stop_waiver_reason)",
        ) from None


def checked_signals(strategy: Strategy, bars: OHLCV) -> Signals:
    """`strategy.signals(bars)`, refusing a result that is not `Signals` of the bars' length."""
    signals = strategy.signals(bars)
    where = getattr(type(strategy), "__keel_where__", strategy.name)
    if not isinstance(signals, Signals):
        raise InputError(
            f"strategy {where}: signals() returned {type(signals).__name__}, not Signals", hint=_HINT_CONTRACT
        )
    if len(signals) != len(bars):
        raise InputError(
            f"strategy {where}: signals() returned {len(signals):,} bars for {bars.symbol}'s {len(bars):,}",
            hint="every array of Signals is bar-aligned with the OHLCV it was given",
        )
    return signals


# -- checks -----------------------------------------------------------------------------------------------


def _find_class(module: types.ModuleType, class_name: str, where: str, shown: str) -> type[Strategy]:
    obj = getattr(module, class_name, None)
    if obj is None:
        defined = sorted(
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy and not inspect.isabstract(v)
        )
        there = f"strategies it defines: {', '.join(defined)}" if defined else "it defines no Strategy subclass"
        raise InputError(f"strategy {where}: '{shown}' has no '{class_name}'; {there}", hint=_HINT_CONTRACT)
    if not isinstance(obj, type):
        raise InputError(
            f"strategy {where}: '{class_name}' is a {type(obj).__name__}, not a class", hint=_HINT_CONTRACT
        )
    if not issubclass(obj, Strategy):
        raise InputError(f"strategy {where}: {class_name} is not a Strategy subclass", hint=_HINT_CONTRACT)
    return obj


def _checked_class(cls: type[Strategy], where: str, source: Mapping[str, str]) -> type[Strategy]:
    """A subclass of `cls` that keeps the contract's promises visible: its source, and `signals` checked."""
    from keel.strategies.registry import _REGISTRY, contract_problems

    skip = ("already taken", "does not implement")
    problems = [message for _, message in contract_problems(cls) if not any(s in message for s in skip)]
    name = getattr(cls, "name", None)
    known = _REGISTRY.get(name) if isinstance(name, str) else None
    if known is not None and known is not cls:
        problems.append(f"its name '{name}' is taken by the built-in strategy {known.__qualname__}; choose another")
    missing = set(getattr(cls, "__abstractmethods__", ()))
    if "make_rules" in missing:
        problems.append(f"{cls.__name__} must declare its rules: a classmethod make_rules(params) -> StrategyRules")
    if "signals" in missing:
        problems.append(f"{cls.__name__} must compute its signals: a method signals(bars) -> Signals")
    if missing - {"make_rules", "signals"}:
        problems.append(f"{cls.__name__} does not implement {sorted(missing - {'make_rules', 'signals'})}")
    if problems:
        head = f"strategy {where} does not keep the strategy contract"
        raise InputError(head + ":" + "".join(f"\n  - {p}" for p in dict.fromkeys(problems)), hint=_HINT_CONTRACT)

    original = cls.signals

    def signals(self: Strategy, bars: OHLCV) -> Signals:
        try:
            return original(self, bars)
        except KeelError:
            raise
        except Exception as exc:
            raise InputError(
                f"strategy {where}{_line_in(exc, _file_of(cls))}: signals() raised {_one_line(exc)} "
                f"on {bars.symbol} ({len(bars):,} bars)",
                hint="fix the strategy and run again",
            ) from None

    namespace: dict[str, Any] = {
        "signals": signals,
        "source": types.MappingProxyType(dict(source)),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__wrapped__": cls,
        "__keel_where__": where,
    }
    return type(cls.__name__, (cls,), namespace)


def _source_digest(module: types.ModuleType) -> str:
    try:
        path = inspect.getsourcefile(module)
    except TypeError:
        path = None
    if path is None:
        return "unknown"
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unknown"


def _file_of(cls: type) -> str:
    return str(getattr(sys.modules.get(cls.__module__), "__file__", "") or "")


def _line_in(exc: BaseException, filename: str) -> str:
    """ ", line N" of the deepest frame of `exc` in `filename`, or "" when none is there."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if filename and f.filename == filename]
    if lines and lines[-1] is not None:
        return f", line {lines[-1]}"
    if isinstance(exc, SyntaxError) and exc.filename == filename and exc.lineno:
        return f", line {exc.lineno}"
    return ""


def _one_line(exc: BaseException) -> str:
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _import_hint(exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return "install what it imports into the environment keel runs in; a file cannot import files next to it"
    return "loading a strategy runs its code: fix the error and run again"


def _looks_like_path(text: str) -> bool:
    return text.endswith(".py") or "/" in text or "\\" in text
