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

import os
import sys
from collections import deque
from pathlib import Path
from typing import Any, Iterable

from xtl.errors import XtlError

__all__ = ["sweep_ray"]


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise XtlError("distributed sweeps need Ray: pip install 'xtl[ray]'") from exc
    return ray


class _Worker:
    """Holds one model; runs the sweep of one item at a time (a Ray actor)."""

    def __init__(self, model: str, dtype: str, device: str | None, threads: int | None):
        import torch

        from xtl.models import load_model

        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(model, dtype=dtype, device=device)

    def settings(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """What :func:`xtl.sweep` with ``kwargs`` would record (its own defaults filled in)."""
        import inspect

        from xtl.engine import sweep, sweep_settings

        call = inspect.signature(sweep).bind(self.model, [], **kwargs)
        call.apply_defaults()
        a = call.arguments
        return sweep_settings(self.model, a["site"], a["src_layers"], a["tgt_layers"], a["max_new_tokens"],
                              a["mode"], a["candidates"], a["chat"], a["settings"])

    def run(self, pair: Any, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        from xtl.engine import sweep

        return sweep(self.model, [pair], progress=False, **kwargs).to_dict("records")


def sweep_ray(model: str, items: Iterable[Any], store: str | os.PathLike, *, dtype: str = "float32",
              device: str | None = None, address: str | None = None, workers: int | None = None,
              progress: bool = True, max_restarts: int | None = None, **kwargs: Any):
    """:func:`xtl.sweep` of ``items`` into ``store``, spread over a Ray cluster.

    Args:
        model: a model spec for :func:`xtl.load_model` (each worker loads its own copy).
        items: as for :func:`xtl.sweep`.
        store: the results store (required: it is how workers' results meet).
        dtype, device: how each worker loads the model; device default: ``cuda`` when the
            cluster has GPUs (one worker per GPU), else ``cpu``.
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

    from xtl.engine import as_pairs, item_key
    from xtl.store import ResultsStore, read_store

    ray = _ray()
    for reserved in ("store", "progress", "model"):
        kwargs.pop(reserved, None)
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
        return actor.options(name=f"xtl-worker-{spawned}", **per).remote(model, dtype, device, threads)

    pool = [spawn() for _ in range(count)]
    try:
        meta = ray.get(pool[0].settings.remote(kwargs))
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, XtlError):
            raise cause from None
        raise XtlError(f"a Ray worker could not start ({str(cause).strip().splitlines()[-1][:300]})") from exc
    results = ResultsStore(store, meta)
    pairs = as_pairs(items)
    queue = deque(p for p in pairs if not results.has(item_key(p)))
    restarts_left = 2 * count if max_restarts is None else max_restarts
    bar = tqdm(total=len(queue), unit="item", disable=not progress,
               desc=f"sweep {meta['site']} on {count} Ray worker(s)")
    running: dict[Any, tuple[Any, Any]] = {}

    def feed(worker) -> None:
        if queue:
            pair = queue.popleft()
            running[worker.run.remote(pair, kwargs)] = (worker, pair)

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
                    print(f"xtl: a Ray worker died ({type(exc).__name__}); "
                          f"{len(pool)} left", file=sys.stderr)
                    if not running:
                        feed(pool[0])
                    continue
                restarts_left -= 1
                print(f"xtl: a Ray worker died ({type(exc).__name__}); its item is run again "
                      "on a new worker", file=sys.stderr)
                worker = spawn()
                pool.append(worker)
                feed(worker)
                continue
            if not results.has(item_key(pair)):
                results.write(item_key(pair), rows)
            bar.update(1)
            feed(worker)
    finally:
        bar.close()
    return read_store(Path(store))
