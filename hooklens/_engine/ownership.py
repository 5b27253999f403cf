"""Who runs the model now: one hooklens job at a time, first come first served.

Hook points, the module hooks that serve them and the attention implementation switch are state
of the shared model, so two calls running at once (a sweep in a background thread and a forward
in the next cell) would see each other's hooks. Every call that runs the model or attaches hooks
holds the model's `Ownership` while it does; a call from another thread waits for its turn.
Long jobs (a sweep) hold it one batch at a time, so other calls interleave between batches.

The lock is re-entrant (a forward inside `with model.hooks(...)` in the same thread runs at
once) and fair: a waiting call gets the model before the job that just released it can take it
again, so a sweep cannot starve the notebook.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class Ownership:
    """A fair, re-entrant lock over one model. `hold()` is the way to take it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._queue: deque[object] = deque()

    @property
    def held_here(self) -> bool:
        """Whether the calling thread holds the model."""
        return self._owner == threading.get_ident()

    @property
    def busy(self) -> bool:
        """Whether some thread holds the model."""
        return self._owner is not None

    def acquire(self, on_wait: Callable[[], None] | None = None) -> None:
        """Take the model; `on_wait()` is called (once, unlocked) if another thread has it."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None and not self._queue:
                self._owner, self._depth = me, 1
                return
            ticket = object()
            self._queue.append(ticket)
        try:
            if on_wait is not None:
                on_wait()
            with self._cond:
                while not (self._owner is None and self._queue[0] is ticket):
                    self._cond.wait()
                self._queue.popleft()
                self._owner, self._depth = me, 1
        except BaseException:  # interrupted while waiting: leave the queue as it was
            with self._cond:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                self._cond.notify_all()
            raise

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("this thread does not hold the model")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def hold(self, on_wait: Callable[[], None] | None = None) -> _Held:
        """Hold the model for the block (see `acquire`); released however the block ends."""
        return _Held(self, on_wait)


class _Held:
    """`with owner.hold():` (a class, not a generator: a forward enters one every call)."""

    __slots__ = ("_on_wait", "_owner")

    def __init__(self, owner: Ownership, on_wait: Callable[[], None] | None) -> None:
        self._owner, self._on_wait = owner, on_wait

    def __enter__(self) -> None:
        self._owner.acquire(self._on_wait)

    def __exit__(self, *exc: object) -> None:
        self._owner.release()
