"""MessageQueue: events in order and bounded (oldest dropped, counted); retained topics coalesce."""

from __future__ import annotations

from app.integrations.mqtt.queue import Message, MessageQueue


def drain(q: MessageQueue) -> list[Message]:
    out = []
    while len(q):
        key, message = next(iter(q._items.items()))
        q.done(key, message)
        out.append(message)
    return out


class TestMessageQueue:
    async def test_events_keep_their_order_and_leave_only_when_done(self) -> None:
        q = MessageQueue(10)
        for i in range(3):
            q.put(Message("argus/events", str(i).encode()))
        _, head = await q.head()
        assert head.payload == b"0" and len(q) == 3  # still queued until acknowledged
        assert [m.payload for m in drain(q)] == [b"0", b"1", b"2"]

    def test_past_the_bound_the_oldest_event_is_dropped_and_counted(self) -> None:
        q = MessageQueue(3)
        results = [q.put(Message("argus/events", str(i).encode())) for i in range(5)]
        assert results == [True, True, True, False, False]
        assert q.dropped == 2
        assert [m.payload for m in drain(q)] == [b"2", b"3", b"4"]

    def test_latest_only_messages_replace_their_pending_value_and_never_count_as_events(self) -> None:
        q = MessageQueue(1)
        q.put(Message("argus/cam/state", b"connecting", retain=True, latest_only=True))
        q.put(Message("argus/events", b"e1"))
        q.put(Message("argus/cam/state", b"streaming", retain=True, latest_only=True))
        assert q.dropped == 0
        assert [(m.topic, m.payload) for m in drain(q)] == [
            ("argus/events", b"e1"),
            ("argus/cam/state", b"streaming"),
        ]

    async def test_a_value_replaced_while_in_flight_stays_queued(self) -> None:
        q = MessageQueue(10)
        q.put(Message("argus/cam/state", b"a", retain=True, latest_only=True))
        key, in_flight = await q.head()
        q.put(Message("argus/cam/state", b"b", retain=True, latest_only=True))
        q.done(key, in_flight)  # the broker acknowledged "a"; "b" must still go
        assert [m.payload for m in drain(q)] == [b"b"]

    def test_front_and_if_absent(self) -> None:
        q = MessageQueue(10)
        q.put(Message("argus/events", b"e"))
        q.put(Message("argus/cam/state", b"pending", retain=True, latest_only=True))
        q.put(Message("argus/cam/state", b"old", retain=True, latest_only=True), if_absent=True)
        q.put(Message("argus/available", b"online", retain=True, latest_only=True), front=True)
        assert [m.payload for m in drain(q)] == [b"online", b"e", b"pending"]

    def test_ordered_retained_messages_keep_every_change(self) -> None:
        q = MessageQueue(10)
        q.put(Message("argus/cam/anomaly", b"ON", retain=True))
        q.put(Message("argus/cam/anomaly", b"OFF", retain=True))
        assert [m.payload for m in drain(q)] == [b"ON", b"OFF"]
