"""Job deadlines: each running job's timeout, enforced by the worker process's tick, not a thread per job.

RQ stops a job past its timeout with a death penalty: SIGALRM in a forked horse, and in a thread
(where there is no signal) a `threading.Timer` started for every job, which raises the timeout
in the job's thread. A thread started and joined per job was ~0.3 ms of CPU and two thread
hand-offs on a job of a few milliseconds. Here the job's thread notes its deadline (a dict
write) as the job starts and drops it as it ends; the supervisor's tick, every TICK_SECONDS
(0.1 s), raises JobTimeoutException in the thread of every job past its deadline, the way RQ's
timer does (PyThreadState_SetAsyncExc), once. So a job is stopped within a tick of its
timeout, as before within a second.

What was true of RQ's timer stays true: the exception lands once the thread runs Python again,
so a job blocked in a call waits for that call's own timeout (every httpx and Redis call here
has one); and a job stuck past that is no longer renewed (workers/lease.py): its lease expires
and the reaper puts it back, and /healthz fails past HUNG_GRACE_SECONDS.

A worker built without a process around it (RQ's tooling, a test's lone worker) keeps RQ's timer.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from rq.timeouts import BaseDeathPenalty, JobTimeoutException

from config.clock import SYSTEM_CLOCK, Clock


class JobDeadlines:
    """The deadlines of the jobs one process runs, by thread; `enforce()` is the tick's part."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._due: dict[int, tuple[float, type[BaseException], float]] = {}  # thread id -> (deadline, exc, timeout)
        self._lock = threading.Lock()

    def start(self, thread_id: int, timeout: float, exception: type[BaseException]) -> None:
        with self._lock:
            self._due[thread_id] = (self.clock.monotonic() + timeout, exception, timeout)

    def end(self, thread_id: int) -> None:
        with self._lock:
            self._due.pop(thread_id, None)

    def running(self) -> int:
        with self._lock:
            return len(self._due)

    def enforce(self) -> list[int]:
        """Raise the timeout in every thread past its job's deadline (once each); their thread ids."""
        now = self.clock.monotonic()
        # under the lock: a job that ends meanwhile waits in `end` (inside RQ's cancel, which
        # swallows a timeout raised there) instead of taking the exception into the worker's loop
        with self._lock:
            late = [(tid, exc, timeout) for tid, (at, exc, timeout) in self._due.items() if at <= now]
            for tid, exc, timeout in late:
                del self._due[tid]
                _raise_in(tid, exc, timeout)
        return [tid for tid, _, _ in late]

    def penalty(self, timeout: float, exception: type[BaseException] = JobTimeoutException, **_: Any) -> TickPenalty:
        """What RQ calls as its `death_penalty_class(timeout, exception, job_id=...)`."""
        return TickPenalty(self, timeout, exception)


class TickPenalty(BaseDeathPenalty):
    """RQ's death penalty for one job: the deadline noted on entry, dropped on exit."""

    def __init__(self, deadlines: JobDeadlines, timeout: float, exception: type[BaseException]) -> None:
        super().__init__(timeout, exception)  # type: ignore[no-untyped-call]
        self.deadlines = deadlines
        self.thread_id = threading.get_ident()

    def setup_death_penalty(self) -> None:
        if self._timeout > 0:
            self.deadlines.start(self.thread_id, self._timeout, self._exception)

    def cancel_death_penalty(self) -> None:
        self.deadlines.end(self.thread_id)


def _raise_in(thread_id: int, exception: type[BaseException], timeout: float) -> None:
    """`exception` raised in the thread as soon as it runs Python again (what RQ's timer does)."""

    class Timeout(exception):  # type: ignore[misc, valid-type]
        """The class carries its message: PyThreadState_SetAsyncExc takes a class, not an instance."""

        def __init__(self, *args: Any) -> None:
            # BaseException's own, not the class's: RQ's TimerDeathPenalty replaces the __init__ of
            # the exception class it is given, for the whole process, with one that says its timeout
            BaseException.__init__(self, f"Task exceeded maximum timeout value ({timeout:g} seconds)")

    Timeout.__name__ = Timeout.__qualname__ = exception.__name__
    Timeout.__module__ = exception.__module__
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(Timeout))
