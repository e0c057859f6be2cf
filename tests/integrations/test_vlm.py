"""VLM descriptions against a fake OpenAI-compatible server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.events.bus import EventBus
from app.events.snapshots import write_snapshot
from app.events.types import NewEvent, Phase
from app.integrations.vlm import VlmAnswerError, VlmDescriber, parse_answer
from app.kit.severity import Severity
from app.main import create_app
from app.metrics import VLM_REQUESTS
from tests.conftest import AUTH, make_settings
from tests.support.fake_vlm import FakeVlm, fake_vlm
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
async def fake() -> AsyncIterator[FakeVlm]:
    async with fake_vlm() as server:
        yield server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


class Harness:
    """A bus with the describer subscribed (as the lifespan does) and a probe recording what is published."""

    def __init__(self, bus: EventBus, describer: VlmDescriber, data_dir: Path) -> None:
        self.bus, self.describer, self.data_dir = bus, describer, data_dir
        self.published: list[NewEvent] = []
        bus.subscribe("probe", self.published.append, direct=True)
        bus.subscribe("vlm", describer.consider, direct=True)

    def event(self, severity: str = "medium", *, snapshot: bool = True, **changes: Any) -> NewEvent:
        event = NewEvent(
            camera_id=3,
            type="object",
            severity=Severity(severity),
            started_at=datetime.now(UTC),
            data={"label": "person", "zones": ["yard"]},
        )
        if snapshot:
            image = np.full((48, 64, 3), 90, np.uint8)
            event = event.evolve(snapshot_path=write_snapshot(self.data_dir, event.id, 3, image))
        return event.evolve(**changes)

    def updates(self) -> list[NewEvent]:
        return [e for e in self.published if e.phase == Phase.update]


@pytest.fixture
async def make(fake: FakeVlm, data_dir: Path) -> AsyncIterator[Any]:
    stack: list[VlmDescriber] = []

    async def build(**options: Any) -> Harness:
        options = {"base_url": fake.base_url, "model": "llava", "data_dir": data_dir, **options}
        describer = VlmDescriber(EventBus(), **options)
        await describer.__aenter__()
        stack.append(describer)
        return Harness(describer._bus, describer, data_dir)

    yield build
    for describer in stack:
        await describer.__aexit__(None, None, None)


def metric(outcome: str) -> float:
    return VLM_REQUESTS.labels(outcome)._value.get()


class TestDescribe:
    async def test_description_stored_and_request_carries_the_image(self, make: Any, fake: FakeVlm) -> None:
        h: Harness = await make(api_key="sk-test")
        event = h.bus.publish(h.event())

        await h.describer.idle()

        [update] = h.updates()
        assert update.id == event.id
        assert update.description == "A person walks across the yard."
        assert update.severity == Severity.medium
        assert update.data["vlm"]["model"] == "llava" and update.data["label"] == "person"
        [request] = fake.requests  # the published update itself is not sent again
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.body["model"] == "llava"
        [url] = request.image_urls()
        assert url.startswith("data:image/jpeg;base64,")
        sent = base64.b64decode(url.split(",", 1)[1])
        assert sent == (h.data_dir / event.snapshot_path).read_bytes()  # type: ignore[operator]
        assert h.describer.stats()["outcomes"] == {"ok": 1}

    async def test_severity_raised_from_a_fenced_answer(self, make: Any, fake: FakeVlm) -> None:
        fake.answer = (
            'Sure!\n```json\n{"description": "Someone is climbing the fence.", "severity": "Critical"}\n```'
        )
        h: Harness = await make()
        h.bus.publish(h.event("medium"))

        await h.describer.idle()

        [update] = h.updates()
        assert update.severity == Severity.critical
        assert update.data["vlm"]["severity"] == "critical"
        assert update.description == "Someone is climbing the fence."

    async def test_severity_never_lowered(self, make: Any, fake: FakeVlm) -> None:
        fake.answer = '{"description": "A cat.", "severity": "low"}'
        h: Harness = await make()
        h.bus.publish(h.event("high"))
        await h.describer.idle()
        assert [u.severity for u in h.updates()] == [Severity.high]

    async def test_timeout_keeps_the_event_undescribed_and_the_worker_alive(
        self, make: Any, fake: FakeVlm
    ) -> None:
        fake.delay = 5.0
        before = metric("timeout")
        h: Harness = await make(timeout_s=0.3)
        h.bus.publish(h.event())

        await h.describer.idle()

        assert h.updates() == []
        assert h.describer.stats()["outcomes"] == {"timeout": 1}
        assert metric("timeout") == before + 1
        fake.delay = 0.0
        h.bus.publish(h.event())
        await h.describer.idle()
        assert len(h.updates()) == 1

    async def test_full_queue_is_counted_and_never_blocks(self, make: Any, fake: FakeVlm) -> None:
        before = metric("queue_full")
        h: Harness = await make(max_queue=2)

        for _ in range(5):  # consider() is synchronous: the worker has taken none of them yet
            h.bus.publish(h.event())

        assert h.describer.stats()["outcomes"] == {"queue_full": 3}
        assert metric("queue_full") == before + 3
        await h.describer.idle()
        assert len(h.updates()) == 2 and len(fake.requests) == 2

    async def test_only_opened_events_at_min_severity_with_a_snapshot(self, make: Any, fake: FakeVlm) -> None:
        h: Harness = await make(min_severity="high")
        h.bus.publish(h.event("medium"))
        h.bus.publish(h.event("high", snapshot=False))
        h.bus.publish(h.event("critical", phase=Phase.close))
        wanted = h.bus.publish(h.event("high"))

        await h.describer.idle()

        assert len(fake.requests) == 1
        assert [u.id for u in h.updates()] == [wanted.id]

    @pytest.mark.parametrize(
        ("script", "outcome"),
        [({"status": 500}, "error"), ({"answer": "{}"}, "bad_answer"), ({"answer": "   "}, "bad_answer")],
    )
    async def test_failures_are_counted(
        self, make: Any, fake: FakeVlm, script: dict[str, Any], outcome: str
    ) -> None:
        for key, value in script.items():
            setattr(fake, key, value)
        h: Harness = await make()
        h.bus.publish(h.event())
        await h.describer.idle()
        assert h.updates() == []
        assert h.describer.stats()["outcomes"] == {outcome: 1}
        assert h.describer.stats()["last_error"]

    async def test_absolute_snapshot_paths_and_non_jpeg_files(
        self, make: Any, fake: FakeVlm, tmp_path: Path
    ) -> None:
        h: Harness = await make()
        elsewhere = tmp_path / "elsewhere.jpg"
        elsewhere.write_bytes((h.data_dir / h.event().snapshot_path).read_bytes())  # type: ignore[operator]
        secret = tmp_path / "secret.txt"
        secret.write_text("password")
        h.bus.publish(h.event(snapshot=False, snapshot_path=str(elsewhere)))
        h.bus.publish(h.event(snapshot=False, snapshot_path=str(secret)))

        await h.describer.idle()

        assert len(fake.requests) == 1
        assert h.describer.stats()["outcomes"] == {"ok": 1, "no_snapshot": 1}


class TestParseAnswer:
    @pytest.mark.parametrize(
        ("text", "description", "severity"),
        [
            ('{"description": "A van.", "severity": "high"}', "A van.", Severity.high),
            (
                'Here you go: {"description": "A van.", "severity": "moderate"} hope it helps',
                "A van.",
                Severity.medium,
            ),
            ('```\n{"description": "A van."}\n```', "A van.", None),
            ('{"description": "A van.", "severity": "purple"}', "A van.", None),
            ("Two people at the door.", "Two people at the door.", None),
        ],
    )
    def test_parses(self, text: str, description: str, severity: Severity | None) -> None:
        assert parse_answer(text) == (description, severity)

    @pytest.mark.parametrize("text", ["", "{}", '{"severity": "high"}'])
    def test_rejects(self, text: str) -> None:
        with pytest.raises(VlmAnswerError):
            parse_answer(text)


async def test_lifespan_wires_the_vlm_and_the_description_reaches_the_database(
    fake: FakeVlm, tmp_path: Path
) -> None:
    fake.answer = '{"description": "A delivery van stops at the gate.", "severity": "high"}'
    settings = make_settings(tmp_path / "data", vlm_base_url=fake.base_url, vlm_min_severity="low")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        rt = app.state.runtime
        event = NewEvent(camera_id=None, type="external", severity=Severity.low, started_at=datetime.now(UTC))
        event = event.evolve(
            snapshot_path=write_snapshot(settings.data_dir, event.id, None, np.zeros((8, 8, 3), np.uint8))
        )
        rt.bus.publish(event)
        await rt.vlm.idle()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:

            async def described() -> dict[str, Any] | None:  # the logger's periodic flush stores it
                response = await client.get(f"/api/events/{event.id}")
                row = response.json() if response.status_code == 200 else {}
                return row if row.get("description") else None

            row = await eventually(described, 10, interval=0.1, what="the description stored")
        assert row["description"] == "A delivery van stops at the gate."
        assert row["severity"] == "high"
        assert rt.vlm.stats()["outcomes"] == {"ok": 1}


async def test_a_severity_raised_by_the_vlm_reaches_the_alert_engine(fake: FakeVlm, tmp_path: Path) -> None:
    fake.answer = '{"description": "A man is forcing the door open.", "severity": "critical"}'
    settings = make_settings(tmp_path / "data", vlm_base_url=fake.base_url, vlm_min_severity="low")
    app = create_app(settings)
    with WebhookReceiver() as receiver:
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://argus", headers=AUTH
            ) as client:
                hook = await client.post(
                    "/api/webhooks", json={"name": "pager", "url": receiver.url, "secret": receiver.secret}
                )
                assert hook.status_code == 201, hook.text
                rule = await client.post(
                    "/api/alert-rules",
                    json={"name": "urgent", "min_severity": "high", "webhook_ids": [hook.json()["id"]]},
                )
                assert rule.status_code == 201, rule.text
            # given: a low event no rule matches on its own
            event = NewEvent(
                camera_id=None, type="external", severity=Severity.low, started_at=datetime.now(UTC)
            )
            jpeg = np.zeros((8, 8, 3), np.uint8)
            event = event.evolve(snapshot_path=write_snapshot(settings.data_dir, event.id, None, jpeg))
            # when: it is published and the VLM rates it critical
            rt.bus.publish(event)
            await rt.vlm.idle()
            # then: the update fires the rule and the webhook receives the alert
            await receiver.wait_until(lambda r: len(r.delivered) >= 1)
        [delivery] = receiver.delivered
        assert event.id in delivery.body.decode()
        assert "critical" in delivery.body.decode()
