"""`count` sharded over processes (``--workers N``) or a Ray cluster (``--ray auto|ADDRESS``), merged exactly.

The driver (`run_count`) reads the source and cuts the frame stream into shards of ``shard_frames`` consecutive
frames. Each shard is counted by a worker that holds its own `FrameCounter` (anchors, heatmap parameters) and the
driver's `AugmentationReplay` (the same seed and GT database; every (sample, replay) draws from its own generator,
so the draws do not depend on which worker counts a frame). A worker hands back, per shard:

* the *delta* of its family tally: the class x band `Tallies` plus the family's `MERGE_FIELDS` (integer sums);
* the rows each (frame, replay) step appended to objects.parquet / frames.parquet, in step order.

The driver merges the deltas into its own tally (`FamilyTally.merge`: integer additions, exact in any order) and
appends the rows shard by shard in frame order, flushing the Parquet row groups after the same frames as a serial
run. So the report files are byte-identical whatever the number of workers (tests/test_parallel.py), and memory is
bounded by the shards in flight (``2 x workers``), not by the number of frames.

Local workers run torch with ``cores // workers`` intra-op threads (at least 1). One-thread workers (the default:
as many workers as cores) are forked from the driver: nothing is re-imported, and a child that never enters an
OpenMP region is safe. Workers with several threads come from a ``forkserver`` (``spawn`` where there is none) that
preloads the counting modules once, because GNU OpenMP's thread pool does not survive a fork. Ray: one task per shard (``max_retries``: a task lost
with its node is re-run; results are merged in shard order whatever the order they finish in). Query heads replaying
a dump (float IoU sums per decoder layer) and CUDA devices are counted in one process. See docs/scale.md.
"""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_SHARD_FRAMES = 64
RAY_MAX_RETRIES = 3


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int | None, num_frames: int, shard_frames: int) -> int:
    """Worker processes for a run: ``requested`` (None: the number of cores), never more than there are shards."""
    from assignaudit.errors import ConfigError

    if requested is not None and requested < 1:
        raise ConfigError(f"--workers must be >= 1, got {requested}")
    n = available_cores() if requested is None else requested
    shards = max(1, -(-num_frames // max(1, shard_frames)))
    return max(1, min(n, shards))


@dataclass
class ShardSpec:
    """What every worker needs, sent once per worker (Ray: once per cluster, by object reference)."""

    config: Any  # DetectorConfig
    bands: Any  # Bands
    device: str
    replay: Any  # AugmentationReplay
    augment: bool
    replays: int
    write_rows: bool
    threads: int


class _Recorder:
    """Stands in for a row buffer in a worker: keeps what one step appends, for the driver to write."""

    def __init__(self, enabled: bool) -> None:
        from pathlib import Path

        self.path = Path("<shard>") if enabled else None
        self.items: list[dict[str, np.ndarray]] = []

    def append(self, **columns: np.ndarray) -> None:
        self.items.append(columns)

    def take(self) -> list[dict[str, np.ndarray]]:
        items, self.items = self.items, []
        return items


class _Worker:
    """A worker's counter, replay and recorders (built once per process and spec)."""

    def __init__(self, spec: ShardSpec) -> None:
        import torch

        from assignaudit.count import FrameCounter

        torch.set_num_threads(max(1, spec.threads))
        self.spec = spec
        self.objects = _Recorder(spec.write_rows)
        self.frames = _Recorder(spec.write_rows)
        self.counter = FrameCounter(spec.config, spec.bands, torch.device(spec.device), objects_buf=self.objects,
                                    frames_buf=self.frames)
        self.fields = tuple(getattr(self.counter.tally, "MERGE_FIELDS", ()))

    def count(self, frames: list) -> tuple[SimpleNamespace, list[tuple[bool, list, list]]]:
        from assignaudit.count import _ledger_drops
        from assignaudit.tally.base import Tallies

        spec, counter = self.spec, self.counter
        tally = counter.tally
        t = tally.tallies
        tally.tallies = Tallies(t.num_classes, t.num_bands)
        for name in self.fields:
            value = getattr(tally, name)
            setattr(tally, name, np.zeros_like(value) if isinstance(value, np.ndarray) else type(value)(0))
        steps = []
        for frame in frames:
            for r in range(spec.replays):
                aug = spec.replay.apply(frame, r, augment=spec.augment)
                _ledger_drops(self.objects, aug, frame, r, counter.class_index)
                assigned = counter.add(aug, r, frame)
                steps.append((assigned, self.objects.take(), self.frames.take()))
        delta = SimpleNamespace(tallies=tally.tallies, **{name: getattr(tally, name) for name in self.fields})
        return delta, steps


_WORKER: _Worker | None = None
_RAY_WORKERS: dict[str, _Worker] = {}


def _init_local(spec: ShardSpec) -> None:
    global _WORKER
    logging.getLogger("assignaudit").setLevel(logging.ERROR)  # the driver already said every warning once
    _WORKER = _Worker(spec)


def _count_local(frames: list):
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.count(frames)


def _chunks(frames: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for f in frames:
        chunk.append(f)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ordered(submit: Callable[[list], Any], result: Callable[[Any], Any], chunks: Iterator[list],
             window: int) -> Iterator[Any]:
    """Results of ``submit(chunk)`` in chunk order, at most ``window`` chunks in flight."""
    pending: collections.deque = collections.deque()
    for chunk in chunks:
        pending.append(submit(chunk))
        if len(pending) >= window:
            yield result(pending.popleft())
    while pending:
        yield result(pending.popleft())


def start_method(threads: int) -> str:
    """``fork`` for one-thread workers (instant: nothing re-imported; a forked child that never enters an OpenMP
    region is safe), else ``forkserver`` (a fresh server that has run no OpenMP region preloads the modules once;
    GNU OpenMP's thread pool does not survive a fork), else ``spawn``."""
    methods = mp_start_methods()
    if threads <= 1 and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def mp_start_methods() -> list[str]:
    import multiprocessing as mp

    return mp.get_all_start_methods()


def _local_results(spec: ShardSpec, chunks: Iterator[list], workers: int) -> Iterator[Any]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context(start_method(spec.threads))
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["assignaudit.count", "assignaudit.parallel"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_local,
                             initargs=(spec,)) as pool:
        try:
            yield from _ordered(lambda c: pool.submit(_count_local, c), lambda fut: fut.result(), chunks,
                                2 * workers)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _ray_count(spec_key: str, spec: ShardSpec, frames: list):
    """A Ray task: count one shard (the worker state is built once per Ray worker process and spec)."""
    w = _RAY_WORKERS.get(spec_key)
    if w is None:
        _RAY_WORKERS.clear()
        w = _RAY_WORKERS[spec_key] = _Worker(spec)
    return w.count(frames)


def _ray_results(spec: ShardSpec, chunks: Iterator[list], address: str) -> Iterator[Any]:
    from assignaudit.errors import ConfigError

    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'assignaudit[ray]' (or pip install ray)") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True,
                 log_to_driver=False, include_dashboard=False)
        started = True
    try:
        import uuid

        spec_key = uuid.uuid4().hex
        spec_ref = ray.put(spec)
        task = ray.remote(max_retries=RAY_MAX_RETRIES, retry_exceptions=False)(_ray_count)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        yield from _ordered(lambda c: task.remote(spec_key, spec_ref, c), ray.get, chunks, max(2, 2 * cpus))
    finally:
        if started:
            ray.shutdown()


def count_sharded(frames: Iterable, counter, spec: ShardSpec, *, objects_buf, frames_buf, workers: int,
                  shard_frames: int = DEFAULT_SHARD_FRAMES, ray_address: str | None = None,
                  flush_every: int = 512, on_progress: Callable[[int, int], None] | None = None,
                  total: int = 0) -> int:
    """Count ``frames`` on ``workers`` local processes (or Ray) into ``counter`` and its row buffers, exactly as the
    serial loop of `run_count` would; returns the number of (frame, replay) steps."""
    chunks = _chunks(frames, shard_frames)
    results = _ray_results(spec, chunks, ray_address) if ray_address is not None else \
        _local_results(spec, chunks, workers)
    done = 0
    for delta, steps in results:
        counter.tally.merge(delta)
        for assigned, objects, frame_rows in steps:
            for cols in objects:
                objects_buf.append(**cols)
            for cols in frame_rows:
                frames_buf.append(**cols)
            done += 1
            if assigned:
                counter.num_assigned += 1
                if counter.num_assigned % flush_every == 0:
                    objects_buf.flush()
                    frames_buf.flush()
            else:
                counter.num_skipped += 1
            if on_progress:
                on_progress(done, total)
    return done
