"""Sweeps over many GPUs and machines with Ray: one actor per GPU (or CPU worker) holds the
model, items are handed out as workers free up, and the driver writes every result into one
store.

The store, its manifest and its item keys are exactly those of :func:`xtl.sweep`, so a Ray run,
a single-process run and a SLURM array of ``xtl sweep --shard K/N`` can all add to, and resume,
the same store. A worker that dies has its item put back in the queue and is replaced; the
driver writes each item once, so none is lost or duplicated. Ray is an optional dependency:
``pip install "xtl[ray]"``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from xtl.errors import XtlError
from xtl.schema import SweepSettings
from xtl.tasks.item import Item

if TYPE_CHECKING:  # the engine's settings import torch: only the functions that run need them
    import pandas as pd

    from xtl.engine.settings import EngineOptions, SweepRequest

log = logging.getLogger("xtl")

__all__ = ["sweep_ray"]


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise XtlError("distributed sweeps need Ray: pip install 'xtl[ray]'") from exc
    return ray


class _Worker:
    """Holds one model; runs the sweep of one item at a time (a Ray actor)."""

    def __init__(self, model: str, dtype: str, device: str | None, threads: int | None, backend: str = "auto"):
        import torch

        from xtl.models import load_model

        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(model, dtype=dtype, device=device, backend=backend)

    def settings(self, request: SweepRequest, options: EngineOptions,
                 store: str | None = None) -> tuple[SweepSettings, EngineOptions]:
        """What :func:`xtl.sweep` of ``request`` on this worker's model records, with the engine
        path it takes (the resumed store's, else the model's), and the options that fix that path
        for every worker."""
        from dataclasses import replace

        from xtl.engine.run import ENGINE_PATHS, _store_engine, prepare
        from xtl.engine.settings import resolve

        settings = resolve(self.model, request)
        options = _store_engine(store, options)
        fast = prepare(self.model, settings, options).fast
        return settings.replace(engine=ENGINE_PATHS[fast]), replace(options, fast=fast)

    def run(self, item: Item, settings: SweepSettings, options: EngineOptions) -> list[dict[str, Any]]:
        from xtl.engine.run import run_sweep

        return run_sweep(self.model, [item], settings, options).to_dict("records")


#: :func:`xtl.sweep` arguments that a Ray run takes (the rest are the driver's own).
_REQUEST = ("site", "src_layers", "tgt_layers", "max_new_tokens", "mode", "candidates", "chat", "grid", "screen",
            "alpha", "span", "positions", "source_langs", "weights", "extrapolate")


def sweep_ray(model: str, items: Iterable[Any], store: str | os.PathLike, *, dtype: str = "float32",
              device: str | None = None, backend: str = "auto", address: str | None = None, workers: int | None = None,
              progress: bool = True, max_restarts: int | None = None, **kwargs: Any) -> "pd.DataFrame":
    """:func:`xtl.sweep` of ``items`` into ``store``, spread over a Ray cluster.

    Args:
        model: a model spec for :func:`xtl.load_model` (each worker loads its own copy).
        items: as for :func:`xtl.sweep`.
        store: the results store (required: it is how workers' results meet).
        dtype: the dtype each worker loads the model in.
        backend: the backend each worker loads the model on (:func:`xtl.load_model`).
        device: each worker's device; default ``cuda`` when the cluster has GPUs (one worker
            per GPU), else ``cpu``.
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); default: the
            running one, or a new local one.
        workers: number of actors (default: one per GPU, else one per two CPUs).
        progress: a progress bar over items, aggregated in the driver.
        max_restarts: replacement workers allowed for workers that die (default: 2 x workers).
        **kwargs: :func:`xtl.sweep` settings (site, src_layers, tgt_layers, max_new_tokens, ...).

    Returns:
        The whole store as a DataFrame (:func:`xtl.read_store`).
    """
    from tqdm.auto import tqdm

    from xtl.engine.settings import EngineOptions, SweepRequest
    from xtl.engine.store import ResultsStore, read_store
    from xtl.models.backends import check_backend
    from xtl.tasks.item import as_items

    check_backend(backend)
    for reserved in ("store", "progress", "model"):
        kwargs.pop(reserved, None)
    unknown = sorted(set(kwargs) - set(_REQUEST) - {"settings", "batch_size", "fast"})
    if unknown:
        raise XtlError(f"sweep_ray got unknown setting(s) {unknown}; it takes {', '.join(_REQUEST)}, "
                       "settings, batch_size and fast")
    request = SweepRequest(**{k: kwargs[k] for k in _REQUEST if k in kwargs},
                           recorded=kwargs.get("settings") or {})
    options = EngineOptions(batch_size=kwargs.get("batch_size"), fast=kwargs.get("fast"), progress=False)
    pairs = as_items(items)
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=None if address in (None, "local") else address,
                 include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        count, per = workers or gpus, {"num_gpus": 1, "num_cpus": 1}
        device = device or "cuda"
        threads = None
    else:
        cpus = max(1, int(resources.get("CPU", 1)))
        count = workers or max(1, cpus // 2)
        threads = max(1, cpus // count)
        per = {"num_cpus": threads}
        device = device or "cpu"
    actor = ray.remote(_Worker)
    spawned = 0

    def spawn():
        nonlocal spawned
        spawned += 1
        return actor.options(name=f"xtl-worker-{spawned}", **per).remote(model, dtype, device, threads, backend)

    pool = [spawn() for _ in range(count)]
    try:
        meta, options = ray.get(pool[0].settings.remote(
            request, options, os.fspath(store) if isinstance(store, (str, os.PathLike)) else None))
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, XtlError):
            raise cause from None
        raise XtlError(f"a Ray worker could not start ({str(cause).strip().splitlines()[-1][:300]})") from exc
    results = ResultsStore(store, meta)
    queue = deque(p for p in pairs if not results.has(p.key))
    restarts_left = 2 * count if max_restarts is None else max_restarts
    bar = tqdm(total=len(queue), unit="item", disable=not progress,
               desc=f"sweep {meta.site} on {count} Ray worker(s)")
    running: dict[Any, tuple[Any, Any]] = {}

    def feed(worker) -> None:
        if queue:
            pair = queue.popleft()
            running[worker.run.remote(pair, meta, options)] = (worker, pair)

    try:
        for worker in pool:
            feed(worker)
        while running:
            (done,), _ = ray.wait(list(running), num_returns=1)
            worker, pair = running.pop(done)
            try:
                rows = ray.get(done)
            except ray.exceptions.RayActorError as exc:
                queue.appendleft(pair)  # the item goes back; a new worker takes the dead one's place
                pool.remove(worker)
                if restarts_left <= 0:
                    if not pool:
                        raise XtlError(f"every Ray worker died (last: {type(exc).__name__}); "
                                       f"finished items are in {store}, rerun to resume") from exc
                    log.warning("a Ray worker died (%s); %d left", type(exc).__name__, len(pool))
                    if not running:
                        feed(pool[0])
                    continue
                restarts_left -= 1
                log.warning("a Ray worker died (%s); its item is run again on a new worker",
                            type(exc).__name__)
                worker = spawn()
                pool.append(worker)
                feed(worker)
                continue
            if not results.has(pair.key):
                results.write(pair.key, rows)
            bar.update(1)
            feed(worker)
    finally:
        bar.close()
    return read_store(Path(store))
