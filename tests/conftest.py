"""Shared test set-up.

pytest-trio 0.8 runs each async test inside a nursery, so a failing test
surfaces as a one-element ExceptionGroup; unwrap it so that assertion
messages (and pytest's assertion rewriting) read as for a sync test.

Commands save their findings in .mmurace/findings under the working
directory unless told otherwise: each test has them saved in a directory of
its own (MMURACE_SAVE), so that the tests leave the work tree as they found it.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _findings_saved_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMURACE_SAVE", str(tmp_path / "findings"))


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    try:
        return (yield)
    except BaseExceptionGroup as group:
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if exc is group:
            raise
        raise exc.with_traceback(exc.__traceback__) from None
