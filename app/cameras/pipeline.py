"""CameraPipeline: wires source -> sampler -> analyzers -> events, and frames -> live hub, for one camera.

The source's demux thread keeps packets and decodes on demand; the pipeline's task
(`argus.pipeline:<id>`) takes sampled frames, runs the analyzer chain through the shared pool, turns
findings into events and hands detections to the live hub. Everything that crosses from the demux
thread to the loop goes through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from app.analyzers.registry import AnalyzerContext, AnalyzerRegistry
from app.analyzers.runner import AnalyzerRunner, FrameResult
from app.analyzers.tracing import Tracer
from app.cameras.config import CameraConfig
from app.cameras.schemas import CameraStatus
from app.config import Settings
from app.events.bus import EventBus
from app.events.episodes import EpisodeTracker
from app.events.snapshots import save_snapshot
from app.inference.pool import ResourcePool
from app.kit.tasks import cancel_and_wait, spawn
from app.live.hub import LiveHub
from app.metrics import FRAMES_ANALYZED
from app.stream.frame import Frame
from app.stream.sampler import Sampler
from app.stream.source import SourceState, StreamSource

log = logging.getLogger("argus.cameras")
IDLE_POLL_S = 0.5  # while nobody watches: keep the snapshot frame fresh, notice new viewers


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    settings: Settings
    pool: ResourcePool
    bus: EventBus
    hub: LiveHub
    registry: AnalyzerRegistry
    tracer: Tracer | None = None


class CameraPipeline:
    def __init__(self, config: CameraConfig, deps: PipelineDeps) -> None:
        self.config = config
        self.deps = deps
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offered: Frame | None = None
        self._learning = True  # until every analyzer has answered once without asking to warm up
        ctx = AnalyzerContext(config.id, deps.pool, deps.settings, deps.tracer)
        self.analyzers = deps.registry.build_chain(config.chain(), ctx)
        self.runner = AnalyzerRunner(
            self.analyzers,
            budget_ms=deps.settings.analyzer_budget_ms,
            camera_id=config.id,
            tracer=deps.tracer,
        )
        self.episodes = EpisodeTracker(config.id, deps.bus, self._save_snapshot, fence=config.fence)
        try:
            self.source = StreamSource(
                config.id,
                config.url,
                deps.settings,
                on_state=self._on_state,
                decode=config.decode,
                rtsp_transport=config.rtsp_transport,
                pre_roll_s=config.pre_roll_s,
            )
            self.sampler = Sampler(self.source, config.analysis_fps, config.drop_policy, config.drop_every_n)
        except Exception:
            self.runner.finish()  # analyzers release the models they attached
            raise

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.deps.hub.publish_state(self.config.id, SourceState.CONNECTING, {})
        self.source.start()
        self._tasks = [
            spawn(self._analyse(), name=f"argus.pipeline:{self.config.id}"),
            spawn(self._feed_live(), name=f"argus.live-feed:{self.config.id}"),
        ]
        log.info("camera %s (%s) started: %s", self.config.id, self.config.name, self.config.masked_url)

    async def stop(self) -> None:
        self.sampler.close()
        for task in self._tasks:
            await cancel_and_wait(task)
        await asyncio.to_thread(self.source.stop)
        self.episodes.close_all(self.runner.finish())
        self.deps.hub.publish_state(self.config.id, SourceState.STOPPED, {})
        log.info("camera %s (%s) stopped", self.config.id, self.config.name)

    def can_retune(self, config: CameraConfig) -> bool:
        """Only sampling, decoding or recording changed: apply it live instead of reconnecting."""
        same_stream = (config.url, config.rtsp_transport) == (self.config.url, self.config.rtsp_transport)
        same_lease = config.fence == self.config.fence  # a new token: a new ownership, a fresh start
        return same_stream and same_lease and config.chain() == self.config.chain()

    def retune(self, config: CameraConfig) -> None:
        self.sampler.configure(config.analysis_fps, config.drop_policy, config.drop_every_n)
        self.source.set_decode(config.decode)
        self.source.ring.configure(config.pre_roll_s)
        self.config = config
        log.info(
            "camera %s (%s) retuned: %.1f fps, %s",
            config.id,
            config.name,
            config.analysis_fps,
            config.drop_policy,
        )

    async def _analyse(self) -> None:
        async for frame in self.sampler:
            result = await self.runner.run(frame)
            FRAMES_ANALYZED.labels(str(self.config.id)).inc()
            self._publish_detections(frame, result)
            for finding in result.findings:
                await self.episodes.apply(finding, frame.captured_at, frame.image)
            # while an event is open: every frame decoded (gated cameras), analysed at analysis_fps
            # (keyframe_burst); keyframes otherwise. An analyzer still learning its scene (VAD warm-up)
            # gets every frame too, so it learns at the rate it will judge at.
            busy = bool(self.episodes.open_events)
            self.sampler.set_burst(busy)
            self._learning = _still_learning(result, self._learning)
            self.source.set_pixel_demand(busy or self._learning)

    async def _feed_live(self) -> None:
        """Pass the live view's wish for frames to the source, and the source's newest frame to the hub.

        Polled at twice the wanted rate (the hub encodes on its own tick, so this only bounds staleness);
        the source converts live frames only while someone watches.
        """
        while True:
            fps = self.deps.hub.demand(self.config.id)
            self.source.set_live_demand(fps)
            self.offer_latest()
            await asyncio.sleep(1 / (2 * fps) if fps > 0 else IDLE_POLL_S)

    def offer_latest(self) -> None:
        """Hand the source's newest frame to the hub, once (snapshots call this too, for freshness)."""
        frame = self.source.latest()
        if frame is not None and frame is not self._offered:
            self.deps.hub.offer(frame)
            self._offered = frame

    def _publish_detections(self, frame: Frame, result: FrameResult) -> None:
        """Boxes in stream pixels; sent also when empty so clients clear stale overlays."""
        observations = result.observations.values()
        if not any(obs.detections for obs in observations) and "detector" not in result.observations:
            return
        boxes = [d.to_json() for obs in observations for d in obs.detections]
        self.deps.hub.publish_detections(
            self.config.id, frame.seq, frame.captured_at, frame.source_width, frame.source_height, boxes
        )

    async def _save_snapshot(self, event_id: str, camera_id: int, image: np.ndarray) -> str | None:
        try:
            return await save_snapshot(self.deps.settings.data_dir, event_id, camera_id, image)
        except OSError:
            log.exception("camera %s: snapshot for event %s not written", camera_id, event_id)
            return None

    def _on_state(self, state: SourceState) -> None:
        """Called from the capture thread: hop to the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.deps.hub.publish_state, self.config.id, str(state), {})

    def status(self) -> CameraStatus:
        src = self.source.status()
        drops = dict(src.drops)
        for reason, n in self.runner.drops.items():
            drops[reason] = drops.get(reason, 0) + n  # timeout | error | dependency
        last = src.last_frame_at
        return CameraStatus(
            camera_id=self.config.id,
            state=str(src.state),  # type: ignore[arg-type]
            fps_in=round(src.fps_in, 2),
            fps_analyzed=round(self.sampler.fps.rate(), 2),
            frames_in=src.frames_in,
            frames_analyzed=self.sampler.frames_analyzed,
            frames_dropped=drops,
            reconnects=src.reconnects,
            last_frame_at=datetime.fromtimestamp(last, UTC) if last else None,
            last_error=src.last_error,
            analyzers=[a.name for a in self.analyzers],
            gate=src.gate,  # type: ignore[arg-type]
            decode=src.decode,
            decoded_fps=src.decoded_fps,
            packets_per_s=src.packets_per_s,
            bytes_per_s=src.bytes_per_s,
            gop_s=src.gop_s,
        )


def _still_learning(result: FrameResult, before: bool) -> bool:
    """An analyzer skipped this frame (timeout under load, a model still loading) has not said whether it
    still learns: keep the last answer, so a warm-up is never starved to keyframes and stretched over
    the motion it should have learned the scene before."""
    if result.skipped:
        return before or any(obs.data.get("warming_up") for obs in result.observations.values())
    return any(obs.data.get("warming_up") for obs in result.observations.values())
