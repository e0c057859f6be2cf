"""The learned normality model on real footage (vtest.avi pedestrians, bikes.mp4 cyclist).

History: an empty night hour and ten minutes of pedestrians with a cyclist riding a one-way lane (see
tests/support/vad_footage.py). The VAD then watches the next day: the same kind of footage raises
(almost) nothing, each anomaly kind raises an event that names its reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.analyzers.normality import CELLS, ModelStore, NormalityModel, extract, grey_plane
from app.analyzers.registry import AnalyzerContext
from app.analyzers.vad import VadAnalyzer, create
from app.config import Settings
from app.inference.pool import ResourcePool
from app.stream.frame import Frame
from tests.support import vad_footage as vf

DAY_S, NIGHT_S = 600.0, 600.0


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ResourcePool]:
    async with ResourcePool(tmp_path / "models") as pool:
        yield pool


def learned_vad(pool: ResourcePool, settings: Settings, **options: Any) -> VadAnalyzer:
    """A VAD whose camera already learned the history (its model file in DATA_DIR, as after a restart)."""
    ModelStore(settings.data_dir / "vad").save(1, vf.learned_model(DAY_S, NIGHT_S))
    return create({"learn_s": DAY_S, **options}, AnalyzerContext(1, pool, settings))


@pytest.fixture(scope="module")
def played_cache() -> dict[str, vf.Played]:
    return {}


async def played(pool: ResourcePool, settings: Settings, cache: dict[str, vf.Played]) -> vf.Played:
    if "run" not in cache:
        analyzer = learned_vad(pool, settings)
        cache["run"] = await vf.play(analyzer, vf.test_set(normal_s=150.0))
        analyzer.finish()
    return cache["run"]


def in_kind(run: vf.Played, kind: str) -> list[vf.Episode]:
    return [e for e in run.episodes if e.segment == kind]


class TestOnRealFootage:
    async def test_learned_normal_footage_raises_almost_nothing(
        self, pool: ResourcePool, settings: Settings, played_cache: dict[str, vf.Played]
    ) -> None:
        run = await played(pool, settings, played_cache)
        false = in_kind(run, "normal") + in_kind(run, "still")
        normal_s = run.seconds["normal"] + run.seconds["still"]
        assert len(false) <= 2, (normal_s, [(e.segment, e.regions) for e in false])

    @pytest.mark.parametrize(
        ("kind", "component"),
        [("fast", "how_fast"), ("cyclist", "where"), ("contraflow", "direction"), ("night", "when")],
    )
    async def test_each_anomaly_kind_raises_an_event_naming_its_reason(
        self,
        pool: ResourcePool,
        settings: Settings,
        played_cache: dict[str, vf.Played],
        kind: str,
        component: str,
    ) -> None:
        run = await played(pool, settings, played_cache)
        episodes = in_kind(run, kind)
        assert episodes, f"no event during {kind}"
        assert any(component in e.components for e in episodes), [e.regions for e in episodes]
        region = next(r for e in episodes for r in e.regions if r["component"] == component)
        x1, y1, x2, y2 = region["box"]
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
        assert region["reason"].startswith(component.replace("_", " ") + ":")

    async def test_the_snapshot_outlines_the_regions(self, pool: ResourcePool, settings: Settings) -> None:
        analyzer = learned_vad(pool, settings)
        segments = [s for s in vf.test_set(normal_s=25.0) if s.kind in ("normal", "cyclist")][:3]
        snapshots = []
        seq = 0
        for seg in segments:
            for image, t in zip(seg.frames, seg.times(), strict=True):
                seq += 1
                obs = await analyzer.process(Frame(1, seq, t, image, *vf.SIZE), {})
                snapshots += [(f, image) for f in obs.findings if f.phase == "open"]
        analyzer.finish()
        finding, image = snapshots[0]
        assert finding.snapshot is not None and finding.snapshot.shape == image.shape
        x1, y1, _, _ = finding.data["regions"][0]["box"]
        corner = (int(y1 * image.shape[0]), int(x1 * image.shape[1]))
        assert tuple(finding.snapshot[corner]) == (0, 0, 255)  # red outline on the region's corner
        assert not np.array_equal(finding.snapshot, image)

    async def test_the_cyclist_region_is_where_it_rode(
        self, pool: ResourcePool, settings: Settings, played_cache: dict[str, vf.Played]
    ) -> None:
        run = await played(pool, settings, played_cache)
        region = max((r for e in in_kind(run, "cyclist") for r in e.regions), key=lambda r: r["score"])
        x1, _, _, y2 = region["box"]
        assert x1 < 0.5 and y2 > 0.6  # the lawn at the bottom left (its path: x 0..0.5, y 0.62..0.96)


class TestLastingChange:
    async def test_a_lasting_change_is_one_event_then_accepted(
        self, pool: ResourcePool, settings: Settings
    ) -> None:
        """Something new that stays (a light left blinking on the lawn): one event, closed at max_duration_s,
        then its cells stay muted while it lasts instead of reopening an event every frame."""
        analyzer = learned_vad(pool, settings, max_duration_s=20)
        t0 = vf.day_start(1) + 10 * 3600
        frames = [f.copy() for f in vf.normal(400, 1000)]
        for i, frame in enumerate(frames):  # a light left blinking on the lawn
            if i % 2:
                frame[170:230, 0:120] = np.clip(frame[170:230, 0:120].astype(np.int16) + 70, 0, 255)
        run = await vf.play(analyzer, [vf.Segment("lasting", frames, t0)])
        analyzer.finish()
        first, *later = run.episodes
        assert first.closed is not None and first.closed - first.opened >= 20  # closed as max_duration
        blink = first.regions[0]["box"]
        assert blink[0] == 0 and blink[3] == 1  # the lawn at the bottom left
        # then the blinking cells are accepted: nothing later is about them (pedestrians elsewhere may be)
        assert all(r["box"] != blink for e in later for r in e.regions[:1]), [e.regions[:1] for e in later]


class TestPersistence:
    async def test_the_model_survives_a_restart(self, pool: ResourcePool, settings: Settings) -> None:
        first = create({"learn_s": 60}, AnalyzerContext(1, pool, settings))
        await vf.play(first, vf.learning_set(day_s=30, night_s=0)[1:])
        learned = first.model.learned_s
        assert learned == pytest.approx(30 - 0.2, abs=0.01)
        assert first.finish() == ()
        second = create({"learn_s": 60}, AnalyzerContext(1, pool, settings))
        assert second.model.learned_s == learned
        assert second.learning_progress == pytest.approx(learned / 60)
        np.testing.assert_array_equal(second.model.active, first.model.active)
        np.testing.assert_array_equal(second.model.directions, first.model.directions)
        second.finish()

    async def test_reset_forgets(self, pool: ResourcePool, settings: Settings) -> None:
        analyzer = learned_vad(pool, settings)
        assert analyzer.learning_progress == 1.0
        analyzer.reset()
        assert analyzer.model.learned_s == 0 and analyzer.learning_progress == 0
        assert not ModelStore(settings.data_dir / "vad").path(1).exists()
        analyzer.finish()  # nothing learned since: nothing written back
        assert create({}, AnalyzerContext(1, pool, settings)).model.learned_s == 0

    async def test_a_file_of_another_version_is_ignored(self, pool: ResourcePool, settings: Settings) -> None:
        store = ModelStore(settings.data_dir / "vad")
        store.save(1, b"not a model")
        assert store.load(1) is None
        assert create({}, AnalyzerContext(1, pool, settings)).model.learned_s == 0

    def test_round_trip(self) -> None:
        model = NormalityModel.loads(vf.learned_model(DAY_S, NIGHT_S))
        again = NormalityModel.loads(model.dumps())
        assert again.learned_s == model.learned_s > 0
        np.testing.assert_array_equal(again.speed, model.speed)


class TestBlend:
    async def test_the_z_score_rules_while_learning_and_progress_is_reported(
        self, pool: ResourcePool, settings: Settings
    ) -> None:
        analyzer = create({"learn_s": 3600, "warmup_frames": 10}, AnalyzerContext(2, pool, settings))
        segments = [vf.Segment("still", vf.still(40), 0.0), vf.Segment("normal", vf.normal(40), 8.0)]
        run = await vf.play(analyzer, segments, camera_id=2)
        assert run.episodes and run.episodes[0].segment == "normal"  # a new camera alerts in its first minute
        obs = await analyzer.process(Frame(2, 999, 17.0, vf.normal(1)[0], *vf.SIZE), {})
        assert 0 < obs.data["learning"] < 0.01
        analyzer.finish()


def test_features_of_real_footage() -> None:
    a, b = (grey_plane(f) for f in vf.normal(2))
    f = extract(a, b, 0.2)
    assert f.active.shape == f.energy.shape == f.speed.shape == (CELLS,)
    assert f.active.any() and not f.active.all()


class TestObjects:
    async def test_a_person_at_an_hour_without_people_is_what_alerts(
        self, pool: ResourcePool, settings: Settings
    ) -> None:
        """Persons seen on the path all day, none at night: a person there at 03:00 is 'what'."""
        from app.analyzers.base import Detection, Observation

        analyzer = create({"learn_s": 200, "objects": True}, AnalyzerContext(3, pool, settings))
        assert analyzer.depends == ("detector",)
        person = Detection(100, 150, 130, 230, 0.9, 0, "person")
        seen = {"detector": Observation("detector", detections=(person,))}
        empty = {"detector": Observation("detector")}
        day, night = vf.day_start() + 10 * 3600, vf.day_start() + 3 * 3600
        frames = vf.normal(400)
        seq = 0
        for i, image in enumerate(frames[:300]):  # 60 s of day with the person, then an empty night
            seq += 1
            await analyzer.process(Frame(3, seq, day + i * 0.2, image, *vf.SIZE), seen)
        for i, image in enumerate(vf.still(720)):
            seq += 1
            await analyzer.process(Frame(3, seq, night + i * 5.0, image, *vf.SIZE), empty)
        assert analyzer.model.learned_s > 3600
        opened = []
        for i, image in enumerate(vf.still(10)):
            seq += 1
            obs = await analyzer.process(Frame(3, seq, night + 3590 + i * 0.2, image, *vf.SIZE), seen)
            opened += [f for f in obs.findings if f.phase == "open"]
        analyzer.finish()
        assert opened, "a person at night raised nothing"
        region = opened[0].data["regions"][0]
        assert region["component"] == "what" and region["reason"].startswith("what: a person here")
