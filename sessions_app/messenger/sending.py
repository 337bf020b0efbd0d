"""This process's socket sends, stored a batch per trip to the database thread."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from realtime.looplocal import per_loop
from sessions_app.messenger import notify
from sessions_app.messenger.messaging import messages_send
from sessions_app.messenger.models import ConversationMessage

# Bounds how long one transaction holds the database's write lock (~0.1 ms a send).
MAX_BATCH = 100


class SendQueue:
    """Sends wait here while the database thread stores the previous batch, then go
    together: one transaction and one commit for all of them (``messages_send``).

    Alone, a send goes at once, as before; under load the batch grows by itself.
    What the batch pushes after commit is sent from the event loop (``deferred``)
    before any of its senders goes on, so a sender hears its own ``message.new``
    first, as when it was stored alone.
    """

    def __init__(self) -> None:
        self.waiting: list[tuple[dict[str, Any], asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def send(self, **kwargs: Any) -> tuple[ConversationMessage, bool]:
        """``message_send(**kwargs)``, in the next batch; its result or its error."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((kwargs, future))
        if self.task is None:
            # A context of its own: not the first sender's (log fields, pushes).
            self.task = asyncio.create_task(
                self._drain(), context=contextvars.Context()
            )
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch = self.waiting[:MAX_BATCH]
                del self.waiting[:MAX_BATCH]
                try:
                    results = await notify.deferred(
                        messages_send, sends=[kwargs for kwargs, _ in batch]
                    )
                except Exception as error:  # each of its senders answers it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                except BaseException:  # cancelled: the loop is going away
                    for _, future in batch:
                        future.cancel()
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its socket went away meanwhile
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.task = None


send_queue = per_loop(SendQueue)  # this event loop's queue
