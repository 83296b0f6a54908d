"""Whether this process finds the store answering, so that request paths able to do without it
(tag.js and bundle.json from memory, a collect batch to the spool) skip it at once while it is
away instead of each waiting for a timeout; and the rule that the event loop never waits on it.

A store call on such a path goes through `Outage.call`. A call that fails as unreachable (a
backend's UNAVAILABLE: refused, reset, timed out) marks the store away; while it is away, calls
raise StoreAway at once, except one every PROBE_EVERY_S, which tries the store and, when it
answers, marks it back. Collect's calls never probe (a batch spools at once instead): the
probes are the background reads of serving, the spool's replayer and /healthz. While an event loop registered with `never_block_this_loop` (the ASGI
front's) runs, every call on its thread raises StoreAway at once: the loop reads memory only, and whatever
memory lacks is read on another thread (server/web/off_loop.py)."""
import asyncio
import threading
import time

PROBE_EVERY_S = 0.5  # while the store is away, one call this often finds out whether it is back
_this_thread = threading.local()  # .loop: the event loop running on this thread that must never wait on the store


class StoreAway(Exception):
    """The store was not asked: it did not answer lately, or this thread must not wait on it."""


def never_block_this_loop():
    """Called on the ASGI front's event loop: while it runs, no store call may run on its thread."""
    _this_thread.loop = asyncio.get_running_loop()


def may_block():
    loop = getattr(_this_thread, "loop", None)
    if loop is None:
        return True
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:  # no loop runs on this thread now
        return True


class Outage:
    """This process's view of the store: answering, or away since a moment (monotonic)."""

    __slots__ = ("away_since", "returns", "_next_probe", "unavailable")

    def __init__(self, unavailable):
        self.unavailable = unavailable  # the backend's exceptions for "cannot be reached right now"
        self.away_since = None
        self.returns = 0  # times the store answered again after being away: part of the version token
        self._next_probe = 0.0

    @property
    def away(self):
        return self.away_since is not None

    def _probe_due(self):
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + PROBE_EVERY_S  # this caller probes; the others skip the store meanwhile
        return True

    def call(self, method, *args, probe=True):
        """method(*args), a store call; StoreAway at once when it must not or need not be tried.
        While the store is away, a call with `probe` tries it when a probe is due; one without
        (collect's, which spools instead) never waits for it."""
        if not may_block():
            raise StoreAway("the event loop never waits on the store")
        if self.away_since is not None and not (probe and self._probe_due()):
            raise StoreAway("the store did not answer lately")
        try:
            result = method(*args)
        except self.unavailable:
            self.failed()
            raise
        self.answered()
        return result

    def failed(self):
        now = time.monotonic()
        if self.away_since is None:
            self.away_since = now
        self._next_probe = now + PROBE_EVERY_S  # counted from the end of a failed call: one at a time

    def answered(self):
        if self.away_since is not None:
            # Any site may have a new version now (published by a process that could reach the
            # store): the version token moves, so memos are read again rather than after their tick.
            self.returns += 1
            self.away_since = None
