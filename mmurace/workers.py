"""Where campaigns run: a local process pool, or the workers of a Dask scheduler.

Both are ``concurrent.futures`` executors, so the code that hands out
batches (``campaign``) and cells (``matrix``) is the same for both.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
from collections.abc import Iterator
from typing import Any

from .errors import UsageError

#: seconds to wait for a Dask scheduler before giving up
CONNECT_SECONDS = 3


@contextlib.contextmanager
def pool(jobs: int, cluster: str | None = None) -> Iterator[tuple[cf.Executor, int]]:
    """A process pool of ``jobs`` workers, or the workers of the Dask scheduler at
    ``cluster``; with how many tasks it runs at once.

    Local workers are forked from a server process that imported mmurace
    once (``forkserver``): not from this process, which may be inside a Trio
    run, and not started afresh (an import costs about a second).

    Raises:
        UsageError: if ``cluster`` is given but cannot be reached, or the
            cluster extra is not installed.
    """
    if cluster is not None:
        client = connect(cluster)
        executor = client.get_executor(pure=False)
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
        try:
            yield executor, max(1, threads)
        finally:
            executor.shutdown(wait=False)
            client.close()
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        context.set_forkserver_preload(["mmurace.campaign", "mmurace.matrix"])
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as executor:
        try:
            yield executor, jobs
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def connect(address: str) -> Any:
    """A client of the Dask scheduler at ``address``, or a one-line UsageError within seconds."""
    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import backends
    except ImportError:
        raise UsageError("--cluster needs Dask's distributed: pip install 'mmurace[cluster]'") from None
    try:  # before a Client exists: one made for a bad address hangs on its way out
        scheme, where = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown scheme {scheme!r}")
        if scheme in ("tcp", "tls"):
            _, port = parse_host_port(where)
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range")
    except ValueError as exc:
        why = f"{exc}; expected tcp://HOST:PORT"
        raise UsageError(f"malformed Dask scheduler address {address!r}: {why}") from None
    try:
        return Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot reach the Dask scheduler at {address!r}: {why}") from None
