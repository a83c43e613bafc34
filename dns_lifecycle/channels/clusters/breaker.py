"""A circuit breaker per DNS server, shared by the processes of one run.

A server that stops answering (hung, stopped, unreachable) costs each call its whole
timeout, and the writes wait for one another's turn: thousands of domains would stall
the run for hours. After ``threshold`` calls in a row without an answer the breaker
opens, and no call goes to that server for the rest of the run: the run says so once,
its other steps go on, and the domains wait where they are for the next run, which
starts with a closed breaker. A wrong API key or ``server_id`` opens it at the first
refusal: every later call would be refused the same way.

Its state lives in shared memory (the worker processes of the release get the same
breaker), so the run as a whole stops after ``threshold`` calls, not each process.
"""

from __future__ import annotations

from dns_lifecycle.core.workers import CONTEXT

__all__ = ["CLOSED", "KEY_REFUSED", "NO_ANSWER", "NO_SERVER", "Breaker"]

# Why a breaker is open; CLOSED: it is not.
CLOSED, NO_ANSWER, KEY_REFUSED, NO_SERVER = range(4)


class Breaker:
    """Counts one server's calls in a row without an answer; see the module docstring."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._misses = CONTEXT.Value("i", 0)
        self._state = CONTEXT.Value("i", CLOSED, lock=False)

    @property
    def state(self) -> int:
        """CLOSED, or why no call goes to the server any more."""
        return int(self._state.value)

    def answered(self) -> None:
        """The server answered (whatever it said): it is alive."""
        with self._misses.get_lock():
            self._misses.value = 0

    def missed(self) -> bool:
        """A call got no answer; True when it is the one that opened the breaker."""
        with self._misses.get_lock():
            self._misses.value += 1
            if self._misses.value >= self.threshold and self._state.value == CLOSED:
                self._state.value = NO_ANSWER
                return True
        return False

    def open(self, why: int) -> bool:
        """Open for a reason other than silence; True when it was still closed."""
        with self._misses.get_lock():
            if self._state.value != CLOSED:
                return False
            self._state.value = why
            return True
