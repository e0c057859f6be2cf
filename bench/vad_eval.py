"""VAD quality on a labelled set of real footage: the learned normality model vs today's motion z-score.

The set (tests/support/vad_footage.py): an hour of vtest.avi pedestrians at 10:00 with a cyclist (bikes.mp4)
riding a one-way lane every 40 s, and an empty night hour, as history; then `--rounds` days of test
footage: normal stretches with a 3x-faster stretch, the cyclist on the lawn, the lane ridden the wrong
way, and pedestrians at 03:00 when the scene was always empty. Both analyzers are the real VadAnalyzer
on the real built-in ONNX model through the shared pool, fed the same frames in the same run; the
baseline is the same analyzer with `normality: false` (today's behaviour).

Reports frame-level ROC-AUC (scikit-learn), event-level precision/recall (an anomaly segment is found
when an episode opens during it; an episode opened during normal footage is a false alert), false
alerts per hour of normal footage, and the cost: ms per frame of the normality model at 320 px (features
+ judge + learn), the pool round trip it avoids, and the model's memory per camera.
Writes bench/results/vad_eval.json.

    .venv/bin/python bench/vad_eval.py [--learn-s 3600] [--normal-s 1200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from app.analyzers.normality import NormalityModel, extract, grey_plane  # noqa: E402
from app.analyzers.registry import AnalyzerContext  # noqa: E402
from app.analyzers.vad import VadAnalyzer, create  # noqa: E402
from app.config import Settings  # noqa: E402
from app.inference.pool import ResourcePool  # noqa: E402
from tests.support import vad_footage as vf  # noqa: E402

ANOMALIES = ("fast", "cyclist", "contraflow", "night")


def metrics(run: vf.Played, segments: list[vf.Segment]) -> dict[str, Any]:
    labels = np.asarray(run.labels)
    scores = np.asarray(run.scores)
    found: dict[str, list[bool]] = {k: [] for k in ANOMALIES}
    for seg in segments:
        if seg.anomaly:
            hit = any(seg.start <= e.opened < seg.end for e in run.episodes)
            found[seg.kind].append(hit)
    true_alerts = sum(e.segment in ANOMALIES for e in run.episodes)
    false_alerts = [e for e in run.episodes if e.segment not in ANOMALIES]
    normal_h = (run.seconds.get("normal", 0) + run.seconds.get("still", 0)) / 3600
    detected = sum(sum(v) for v in found.values())
    total = sum(len(v) for v in found.values())
    reasons: dict[str, dict[str, int]] = {}
    for e in run.episodes:
        for comp in e.components:
            reasons.setdefault(e.segment, {}).setdefault(comp, 0)
            reasons[e.segment][comp] += 1
    return {
        "frame_auc": round(float(roc_auc_score(labels, scores)), 4),
        "frame_auc_by_kind": {
            k: round(float(roc_auc_score(labels[mask], scores[mask])), 4)
            for k in ANOMALIES
            if (mask := np.isin(np.asarray(run.kinds), ["normal", "still", k])).any()
        },
        "event_recall": round(detected / total, 3) if total else None,
        "event_precision": round(true_alerts / len(run.episodes), 3) if run.episodes else None,
        "recall_by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in found.items()},
        "episodes": len(run.episodes),
        "false_alerts": len(false_alerts),
        "false_alerts_per_hour": round(len(false_alerts) / normal_h, 2) if normal_h else None,
        "normal_hours": round(normal_h, 3),
        "reasons": reasons,
    }


async def feed_both(
    new: VadAnalyzer, old: VadAnalyzer, segments: list[vf.Segment]
) -> tuple[vf.Played, vf.Played]:
    """Both analyzers as two cameras of one pool (their frames batch together)."""
    return await asyncio.gather(vf.play(new, segments, 1), vf.play(old, segments, 2))  # type: ignore[return-value]


def cost(frames: list[np.ndarray]) -> dict[str, float]:
    """ms per frame of the normality model alone (grey plane, features, judge, learn) at 320 px."""
    model = NormalityModel.loads(vf.learned_model(600, 600))
    t0 = vf.day_start(5) + 36000
    prev = grey_plane(frames[0])
    start = time.perf_counter()
    cpu = time.thread_time()
    for i, image in enumerate(frames[1:], 1):
        grey = grey_plane(image)
        f = extract(prev, grey, 0.2)
        model.judge(f, t0 + i * 0.2)
        model.learn(f, t0 + i * 0.2)
        prev = grey
    n = len(frames) - 1
    return {
        "normality_ms_per_frame": round((time.perf_counter() - start) / n * 1000, 3),
        "normality_cpu_ms_per_frame": round((time.thread_time() - cpu) / n * 1000, 3),
        "model_bytes_in_memory": model.nbytes,
        "model_bytes_on_disk": len(model.dumps()),
    }


async def pool_round_trip(pool: ResourcePool, frames: list[np.ndarray], analyzer: VadAnalyzer) -> float:
    """ms per frame of one camera's trip through the pool (the built-in motion model), for comparison."""
    items = [
        np.concatenate([analyzer.prep.plane(a), analyzer.prep.plane(b)])
        for a, b in itertools.pairwise(frames)
    ]
    start = time.perf_counter()
    for item in items:
        await pool.infer("vad-motion", item)
    return round((time.perf_counter() - start) / len(items) * 1000, 3)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--learn-s", type=float, default=3600.0)
    ap.add_argument(
        "--normal-s", type=float, default=1200.0, help="seconds of normal daytime footage a round"
    )
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp) / "data")  # type: ignore[call-arg]
        learn = vf.learning_set(args.learn_s, args.learn_s)
        test = vf.test_set(args.normal_s, rounds=args.rounds)
        async with ResourcePool(settings.resolved_models_dir, max_wait_ms=1.0) as pool:
            new = create({"learn_s": args.learn_s}, AnalyzerContext(1, pool, settings))
            old = create({"normality": False}, AnalyzerContext(2, pool, settings))
            t = time.perf_counter()
            await feed_both(new, old, learn)
            learn_wall = time.perf_counter() - t
            t = time.perf_counter()
            new_run, old_run = await feed_both(new, old, test)
            test_wall = time.perf_counter() - t
            frames = vf.normal(400)
            solo = create({"normality": False}, AnalyzerContext(3, pool, settings))
            pool_ms = await pool_round_trip(pool, frames, solo)
            for a in (new, old, solo):
                a.finish()
    result = {
        "host": platform.node(),
        "args": vars(args),
        "frames": {"learn": sum(len(s.frames) for s in learn), "test": len(new_run.scores)},
        "wall_s": {"learn": round(learn_wall, 1), "test": round(test_wall, 1)},
        "learned": metrics(new_run, test),
        "zscore_today": metrics(old_run, test),
        "cost": {**cost(frames), "pool_round_trip_ms": pool_ms},
    }
    out = ROOT / "bench" / "results" / "vad_eval.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
