"""How the public API is called: prompts by keyword, in the order source -> target, and the old
spellings of one release (docs/api-changes.md).

:func:`keyword_call` wraps a public function whose prompts and flags are keyword-only. A call in
the old positional form is either refused with one line showing the new call (where the old
order differs from the new reading: ``transplant`` took the target first) or mapped to the old
meaning with a :class:`FutureWarning`; an old keyword (``target_prompt=``) is renamed with one.
Warnings go through :mod:`warnings`, which shows each once per calling line.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Mapping, Sequence, TypeVar

from xtl.errors import CallError

__all__ = ["keyword_call", "deprecated"]

F = TypeVar("F", bound=Callable[..., Any])


def deprecated(message: str, stacklevel: int = 3) -> None:
    """Warn about an old spelling (:class:`FutureWarning`: meant for the person running the script)."""
    warnings.warn(message + " (the old spelling goes in the next release)", FutureWarning, stacklevel=stacklevel)


def keyword_call(name: str, example: str, *, positional: int = 1, legacy: Sequence[str] | None = None,
                 renamed: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Wrap a public function whose parameters after the first ``positional`` are keyword-only.

    Args:
        name: the public name, as the messages write it (``"xtl.transplant"``).
        example: the call to show, e.g. ``"xtl.transplant(model, source=..., target=..., ...)"``.
        positional: how many leading parameters stay positional.
        legacy: the old positional parameters after those, by their new names: extra positional
            arguments are mapped to them with a warning. None: extra positional arguments are
            refused (:class:`CallError`), for calls whose old order reads differently now.
        renamed: old keyword -> new keyword, accepted with a warning.
    """
    renamed = dict(renamed or {})

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) > positional:
                extra = args[positional:]
                if legacy is None or len(extra) > len(legacy):
                    prompts = " (prompts as source=..., target=...)" if "target=" in example else ""
                    raise CallError(f"{name} takes {_count(positional)} by position and the rest by keyword"
                                    f"{prompts}: {example}")
                names = list(legacy[:len(extra)])
                clash = [n for n in names if n in kwargs]
                if clash:
                    raise CallError(f"{name} got {clash[0]} both by position and by keyword; call it as {example}")
                deprecated(f"{name}: pass {', '.join(names)} by keyword, as {example}")
                kwargs.update(zip(names, extra))
                args = args[:positional]
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs:
                        raise CallError(f"{name} got both {old}= (the old spelling) and {new}=; give {new}= only")
                    deprecated(f"{name}: {old}= is now {new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def _count(n: int) -> str:
    return "one argument" if n == 1 else f"{n} arguments"
