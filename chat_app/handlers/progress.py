"""Run blocking work in a thread and show its progress reports as they arrive."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["run_with_progress"]

T = TypeVar("T")
P = TypeVar("P")


async def run_with_progress(
    work: Callable[[Callable[[P], None]], T],
    on_progress: Callable[[P], Awaitable[None]],
) -> T:
    """`work(progress)` runs in a worker thread; each `progress(x)` is shown with `on_progress(x)`.

    Reports travel through a queue so `on_progress` runs on the event loop, inside the
    Chainlit context of the caller (a worker thread has none).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[P] = asyncio.Queue()

    def progress(report: P) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, report)

    task: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(work, progress))
    while not task.done():
        getter: asyncio.Future[P] = asyncio.ensure_future(queue.get())
        waiting: set[asyncio.Future[Any]] = {task, getter}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            await on_progress(getter.result())
        else:
            getter.cancel()
    while not queue.empty():
        await on_progress(queue.get_nowait())
    return task.result()
