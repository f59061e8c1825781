"""Hearing SIGTERM/SIGINT as early as the server does.

granian's worker handles both signals on its event loop: it stops accepting connections, waits
for the requests in flight, and only then runs the application's lifespan shutdown. A service
that waited for the lifespan would keep taking queued jobs while a long request finishes, and
could not end that request within its grace period. So the lifespan chains a callback in front
of the server's own handler.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def before_stop_signals(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> int:
    """Run `callback`, then the handler already installed on `loop`, on each stop signal.
    Returns how many handlers were chained (none where the loop has none: a test client, or a
    process that handles signals itself)."""
    installed = getattr(loop, "_signal_handlers", {})  # asyncio's registry (no public getter)
    chained = 0
    for signum in STOP_SIGNALS:
        previous = installed.get(signum)
        if previous is None:
            continue

        def handler(previous: asyncio.Handle = previous) -> None:
            callback()
            previous._run()

        loop.add_signal_handler(signum, handler)
        chained += 1
    return chained
