"""The built-in strategies, registered by name, and :func:`make_strategy`."""

from __future__ import annotations

import difflib
import inspect

from xtl.errors import XtlError
from xtl.strategies.base import Agreement, BestOnTrain, Confidence, Fixed, Strategy, Vanilla
from xtl.strategies.learned import Learned
from xtl.strategies.registry import STRATEGIES, register_strategy

__all__ = ["STRATEGIES", "register_strategy", "make_strategy"]


def _takes_seed(factory) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in params)


def make_strategy(spec: "str | Strategy", seed: int = 0) -> Strategy:
    """A strategy from its registered name (``entropy``, ``learned``, ...) or itself; ``seed``
    goes to factories that take one."""
    if isinstance(spec, Strategy):
        return spec
    if spec not in STRATEGIES:
        close = difflib.get_close_matches(str(spec), list(STRATEGIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise XtlError(f"unknown strategy {spec!r}; use one of {', '.join(STRATEGIES)}.{hint}")
    factory = STRATEGIES[spec]
    return factory(seed=seed) if _takes_seed(factory) else factory()


def _builtins() -> None:
    if "vanilla" in STRATEGIES:
        return
    register_strategy("vanilla", Vanilla)
    register_strategy("coarse", Fixed)
    register_strategy("entropy", Confidence)
    register_strategy("entropy-cross", lambda: Confidence(name="entropy (cross)", kind="cross"))
    register_strategy("margin-cross", lambda: Confidence(name="margin (cross)", kind="cross", score="margin"))
    register_strategy("loglik-cross", lambda: Confidence(name="log-likelihood (cross)", kind="cross", score="loglik"))
    register_strategy("best-on-train", BestOnTrain)
    register_strategy("agreement", Agreement)
    register_strategy("learned", lambda seed=0: Learned(seed=seed))
    register_strategy("learned-logistic", lambda seed=0: Learned(name="learned (logistic)", model="logistic", seed=seed))


_builtins()
