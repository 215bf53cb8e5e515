"""CPython's own `concurrent.futures` executor tests, run against
``nbfrost.Dispatcher``.

The mixins are imported from the standard library's test package
(``test.test_concurrent_futures``, CPython 3.12+), never copied:
`ExecutorTest`, `WaitTests`, `AsCompletedTests` and `ExecutorShutdownTest`,
on `BaseTestCase` with `ExecutorMixin`.  Their executor factory makes
``nbfrost.Dispatcher(workers=max_workers)``.  On top of CPython's tear-down
(which only *warns* about a leftover thread), every test here fails if a
thread it started is still alive after ``shutdown(wait=True)``.

Skipped, and why (every other test of the four mixins runs):

* ``ExecutorShutdownTest.test_interpreter_shutdown``,
  ``test_submit_after_interpreter_shutdown``, ``test_hang_gh83386``: they
  start a fresh interpreter that runs ``from concurrent.futures import
  <executor_type.__name__>``, which only works for the standard library's
  own executors.
* ``ExecutorTest.test_max_workers_negative``: it matches CPython's wording
  ("max_workers must be greater than 0"); nbfrost raises the same
  ValueError saying "workers must be >= 1", which
  `test_max_workers_negative_raises_value_error` checks instead.

The module skips itself when the test package is missing (Python < 3.12,
or a Python built without its tests).  ``make test-cpython`` runs it with
the pyenv CPython 3.13 when that is installed (see docs/contributing.md).
"""

from __future__ import annotations

import threading
import time
import unittest
from typing import Any

import pytest

try:
    from test.test_concurrent_futures.executor import ExecutorTest
    from test.test_concurrent_futures.test_as_completed import AsCompletedTests
    from test.test_concurrent_futures.test_shutdown import ExecutorShutdownTest
    from test.test_concurrent_futures.test_wait import WaitTests
    from test.test_concurrent_futures.util import BaseTestCase, ExecutorMixin
except ImportError as exc:  # Python < 3.12, or no test package
    pytest.skip(f"CPython's test.test_concurrent_futures is not importable ({exc}); "
                "run with CPython >= 3.12 that ships its test package",
                allow_module_level=True)

import nbfrost

FRESH_INTERPRETER = ("starts a fresh interpreter that imports the executor class by name "
                     "from concurrent.futures")
THREAD_GRACE = 10.0  # seconds a stopped worker gets to exit


def make_dispatcher(max_workers: int | None = None, **kwargs: Any) -> nbfrost.Dispatcher:
    """The executor factory the mixins call as ``executor_type(max_workers=n)``."""
    return nbfrost.Dispatcher(workers=5 if max_workers is None else max_workers, **kwargs)


class DispatcherMixin(ExecutorMixin):
    executor_type = staticmethod(make_dispatcher)

    def setUp(self) -> None:
        self._threads_before = set(threading.enumerate())
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()  # shutdown(wait=True), then CPython's thread check
        deadline = time.monotonic() + THREAD_GRACE
        for t in set(threading.enumerate()) - self._threads_before:
            t.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in set(threading.enumerate()) - self._threads_before if t.is_alive()]
        self.assertEqual(left, [], "the dispatcher left threads behind after shutdown(wait=True)")


class DispatcherExecutorTest(DispatcherMixin, ExecutorTest, BaseTestCase):
    @unittest.skip("matches CPython's wording 'max_workers must be greater than 0'")
    def test_max_workers_negative(self) -> None:
        pass

    def test_max_workers_negative_raises_value_error(self) -> None:
        for number in (0, -1):
            with self.assertRaisesRegex(ValueError, "workers must be >= 1"):
                self.executor_type(max_workers=number)


class DispatcherWaitTest(DispatcherMixin, WaitTests, BaseTestCase):
    pass


class DispatcherAsCompletedTest(DispatcherMixin, AsCompletedTests, BaseTestCase):
    pass


class DispatcherShutdownTest(DispatcherMixin, ExecutorShutdownTest, BaseTestCase):
    @unittest.skip(FRESH_INTERPRETER)
    def test_interpreter_shutdown(self) -> None:
        pass

    @unittest.skip(FRESH_INTERPRETER)
    def test_submit_after_interpreter_shutdown(self) -> None:
        pass

    @unittest.skip(FRESH_INTERPRETER)
    def test_hang_gh83386(self) -> None:
        pass
