"""One Redis pub/sub channel listened to for the life of a node, resubscribed after any failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

log = logging.getLogger("argus.cluster")

RESUBSCRIBE_S = 1.0
POLL_S = 5.0


async def listen_forever(
    redis: Redis,
    channel: str,
    on_message: Callable[[bytes | str], None],
    ready: asyncio.Event,
    what: str,
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """Hand each message of `channel` to `on_message`; `ready` is set while subscribed.

    Redis restarting or a dropped connection only pauses it (resubscribed after RESUBSCRIBE_S): a
    listener that died silently would cut this node off from the cluster without a sign."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                ready.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                    if message is not None and message.get("type") == "message":
                        on_message(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ready.clear()
            if on_error is not None:
                on_error(exc)
            log.warning("%s: %s: %s; resubscribing in %.0f s", what, type(exc).__name__, exc, RESUBSCRIBE_S)
            await asyncio.sleep(RESUBSCRIBE_S)
