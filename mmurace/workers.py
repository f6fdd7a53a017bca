"""Where campaigns run: a local process pool, or the workers of a Dask scheduler.

Both are ``concurrent.futures`` executors, so the code that hands out
batches (``campaign``) and cells (``matrix``) is the same for both.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from . import interrupt
from .errors import UsageError

T = TypeVar("T")

#: seconds to wait for a Dask scheduler before giving up
CONNECT_SECONDS = 3
#: how often a campaign or the matrix looks for finished work and for a request to stop
POLL_SECONDS = 0.1


class _LocalPool(cf.Executor):
    """A ``multiprocessing.Pool`` as a ``concurrent.futures`` executor.

    Its workers leave Ctrl-C to this process (``interrupt.ignore_in_worker``),
    and shutting it down terminates them: batches still running were only
    run ahead, and a cell still being judged after a request to stop has no
    verdict to give. Workers are forked where the platform can (they start
    with everything imported); one forked from inside a Trio run shares the
    run's wakeup socket, which it lets go of (``_worker_start``).
    """

    def __init__(self, jobs: int) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        self._pool = multiprocessing.get_context(method).Pool(jobs, initializer=_worker_start)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        future: cf.Future[T] = cf.Future()
        future.set_running_or_notify_cancel()

        def failed(exc: BaseException) -> None:
            future.set_exception(exc)

        self._pool.apply_async(fn, args, kwargs, callback=future.set_result, error_callback=failed)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.terminate()
        self._pool.join()


def _worker_start() -> None:
    interrupt.ignore_in_worker()
    signal.set_wakeup_fd(-1)  # a parent's Trio loop listens on it: signals here are not its business


@contextlib.contextmanager
def pool(jobs: int, cluster: str | None = None) -> Iterator[tuple[cf.Executor, int]]:
    """A pool of ``jobs`` local processes, or the workers of the Dask scheduler at
    ``cluster``; with how many tasks it runs at once. Leaving the block ends
    whatever still runs.

    Where processes are spawned rather than forked (not on Linux), each
    imports the program's main module again, so a script that runs a
    campaign on several processes must keep its work under
    ``if __name__ == "__main__":`` (the ``mmurace`` command and pytest do).

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
    local = _LocalPool(jobs)
    try:
        yield local, jobs
    finally:
        local.shutdown()


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
