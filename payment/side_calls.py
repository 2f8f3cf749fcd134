"""Upstream calls made on a few threads of their own while the request
thread makes another one.

A payment with a reservation waits on two services: the order and the
reservation. `SideCalls.start` runs the reservation call on a pool thread
while the request thread fetches the order, so the payment waits for the
slower of the two rather than for their sum. The caller still judges the
answers in its own order: `result()` hands over what the call returned or
raised only when asked.

A call's deadline counts from `start`, not from when a thread picks it up:
time spent waiting for a free thread is part of it. The call is given what
is left (`deadline=` seconds, which the upstream clients take as the bound
of the whole call), and `result()` waits no longer than the deadline
either, so neither the call nor its caller outlives it.

A call the caller no longer wants (`abandon`: the order was refused first)
is cancelled if no thread has picked it up yet; otherwise it runs to its
own end, bounded by the same deadline, and what it raised is read and
dropped, never left unread.

`InOrder` has the same interface without threads: each call is made when
its result is asked for, on the asking thread, one after the other.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import Future, ThreadPoolExecutor


class SideCalls:
    def __init__(self, threads: int):
        # Threads start as calls need them; a process that never takes a
        # payment (the relay) starts none.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="upstream-call")

    def start(self, call, *args, deadline: float, late: Exception) -> "Pending | Deferred":
        """Run `call(*args, deadline=<seconds left>)` on the pool. `late` is
        raised by `result()` when the deadline passes first."""
        ends = time.monotonic() + deadline
        # The request's log fields (requestId, orderId: a context variable)
        # go with the call to the thread that makes it: its log lines carry
        # them, and the upstream client passes the request id on from there.
        context = contextvars.copy_context()
        try:
            future = self._executor.submit(context.run, _until, ends, call, *args)
        except RuntimeError:
            # Shut down under a request still in flight (the worker is
            # exiting): the call is made on the request thread instead.
            return Deferred(call, args, deadline)
        return Pending(future, ends, late)

    def close(self) -> None:
        """Drop the calls no thread has picked up; wait for the running ones,
        each bounded by its deadline."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _until(ends: float, call, *args):
    return call(*args, deadline=ends - time.monotonic())


class Pending:
    """A call started on the pool."""

    def __init__(self, future: Future, ends: float, late: Exception):
        self._future = future
        self._ends = ends
        self._late = late

    def result(self):
        """What the call returned, or raise what it raised; `late` once the
        deadline has passed without an answer."""
        # exception() rather than result(timeout=): it raises TimeoutError
        # only when the wait runs out, so one raised by the call stays the call's.
        try:
            self._future.exception(timeout=max(0.0, self._ends - time.monotonic()))
        except TimeoutError:
            self.abandon()
            raise self._late from None
        return self._future.result()

    def abandon(self) -> None:
        """The result is no longer wanted."""
        if not self._future.cancel():
            self._future.add_done_callback(_read_and_drop)


def _read_and_drop(future: Future) -> None:
    future.exception()


class Deferred:
    """A call made when its result is asked for, on the asking thread."""

    def __init__(self, call, args: tuple, deadline: float):
        self._call = call
        self._args = args
        self._deadline = deadline

    def result(self):
        return self._call(*self._args, deadline=self._deadline)

    def abandon(self) -> None:
        pass


class InOrder:
    """No threads: each call is made when its result is asked for."""

    def start(self, call, *args, deadline: float, late: Exception) -> Deferred:
        return Deferred(call, args, deadline)

    def close(self) -> None:
        pass
