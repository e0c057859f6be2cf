"""Inference microbench: cross-camera micro-batching vs lock-serialised single-frame, same run, same models.

Pools on the same models, timed in turn:
- `serial`: one frame at a time behind the model's lock, on every core (a shared detector, unbatched);
- `batched`: batches up to 16, one run at a time on every core (no calibration);
- `calibrated`: each model's batch cap measured at load (app/inference/calibration.py), one run at a time;
- `calibrated_2runs`: the server's defaults (ResourcePool.from_settings): calibrated cap, and two batches
  in flight on cores/2 threads each (ARGUS_BATCH_RUNS_IN_FLIGHT=2);
- with `--levers`: `inflight2_allcores`, two batches in flight that each use every core.

Two models: the built-in VAD (two 112x64 grey frames -> score) and a detector-sized YOLO-layout graph
(320x320 RGB -> [B, 84, 2100]: YOLOv8n-shaped Conv+SiLU / C2f blocks, three heads). For N = 1, 4, 8,
16 cameras, N async callers each send one frame at a time as fast as answers come back (closed loop), for
`--seconds`, `--repeats` times; the median throughput and median p95 latency are reported per mode.
Also: sessions loaded and process RSS with 1 vs 16 cameras on the same pool.

    .venv/bin/python bench/inference.py [--seconds 1.5] [--repeats 3] [--cameras 1,4,8,16]

`--real` runs the same comparison on the real COCO detector (yolov3-tiny at 416, converted from the
`coco` extra) instead of the synthetic graph. `--regions` instead compares the detector analyzer's modes
on real footage (vtest.avi at 5 FPS, the pipeline's working size): CPU ms per analysed frame and recall
for `full` vs `regions` (optionally with a 256-px region model), on a busy street and on the same street
half calm; recall is against yolov3-tiny on the full-resolution frames (persons >= 0.5), IoU >= 0.5.

Writes bench/results/inference.json (or inference-real.json / detector-regions.json) and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402
import psutil  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from app.inference.manifest import ModelSpec  # noqa: E402
from app.inference.pool import ResourcePool  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "inference.json"
DETECTOR = "bench-yolo320"
VAD = "vad-motion"


class _Graph:
    """Just enough of a YOLOv8n-shaped network: Conv+SiLU blocks, C2f-style splits/concats, 3 heads."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def conv(self, x: str, cin: int, cout: int, k: int = 3, s: int = 1, act: bool = True) -> str:
        w, b, y = self._name("w"), self._name("b"), self._name("conv")
        scale = (2 / (k * k * cin)) ** 0.5
        self.inits += [
            numpy_helper.from_array(
                (self.rng.standard_normal((cout, cin, k, k)) * scale).astype(np.float32), w
            ),
            numpy_helper.from_array(np.zeros(cout, np.float32), b),
        ]
        pad = k // 2
        self.nodes.append(helper.make_node("Conv", [x, w, b], [y], pads=[pad] * 4, strides=[s, s]))
        if not act:
            return y
        sig, out = self._name("sig"), self._name("silu")
        self.nodes += [helper.make_node("Sigmoid", [y], [sig]), helper.make_node("Mul", [y, sig], [out])]
        return out

    def c2f(self, x: str, c: int) -> str:
        """1x1 conv, a bottleneck of two 3x3 convs on half the channels, concat, 1x1 conv."""
        y = self.conv(x, c, c, 1)
        half = c // 2
        a, b = self._name("a"), self._name("b")
        split = self._name("split")
        self.inits.append(numpy_helper.from_array(np.array([half, half], np.int64), split))
        self.nodes.append(helper.make_node("Split", [y, split], [a, b], axis=1))
        m = self.conv(self.conv(b, half, half), half, half)
        cat = self._name("cat")
        self.nodes.append(helper.make_node("Concat", [a, b, m], [cat], axis=1))
        return self.conv(cat, half * 3, c, 1)

    def head(self, x: str, c: int, feats: int) -> str:
        y = self.conv(self.conv(x, c, c), c, feats, 1, act=False)
        shape, out = self._name("shape"), self._name("flat")
        self.inits.append(numpy_helper.from_array(np.array([0, feats, -1], np.int64), shape))
        self.nodes.append(helper.make_node("Reshape", [y, shape], [out]))
        return out


def build_detector(path: Path, size: int = 320, classes: int = 80) -> Path:
    """Input [B, 3, S, S] -> [B, 4 + C, (S/8)^2 + (S/16)^2 + (S/32)^2], as a YOLOv8 export at S."""
    g = _Graph()
    x = g.conv("images", 3, 16, s=2)  # /2
    x = g.c2f(g.conv(x, 16, 32, s=2), 32)  # /4
    p3 = g.c2f(g.conv(x, 32, 64, s=2), 64)  # /8
    p4 = g.c2f(g.conv(p3, 64, 96, s=2), 96)  # /16
    p5 = g.c2f(g.conv(p4, 96, 128, s=2), 128)  # /32
    feats = 4 + classes
    heads = [g.head(p3, 64, feats), g.head(p4, 96, feats), g.head(p5, 128, feats)]
    g.nodes.append(helper.make_node("Concat", heads, ["output0"], axis=2))
    cells = sum((size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(
        g.nodes,
        "bench_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", feats, cells])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def rss_mb() -> float:
    return round(psutil.Process().memory_info().rss / 2**20, 1)


async def drive(
    pool: ResourcePool, model: str, item_shape: tuple[int, ...], cameras: int, seconds: float
) -> dict:
    rng = np.random.default_rng(cameras)
    frames = [rng.random(item_shape, dtype=np.float32) for _ in range(cameras)]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def camera(i: int) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await pool.infer(model, frames[i])
            latencies.append(time.perf_counter() - t0)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(camera(i) for i in range(cameras)))
    wall = time.perf_counter() - started
    return {
        # CPU time the whole process spent per answer: the work, whatever share of the cores we got
        "cpu_ms_per_item": (time.process_time() - cpu) / max(1, len(latencies)) * 1000,
        "throughput": len(latencies) / wall,
        "p95_ms": float(np.percentile(latencies, 95)) * 1000,
        "p50_ms": float(np.percentile(latencies, 50)) * 1000,
    }


def mean_batch(stats: dict[str, Any]) -> float:
    hist = {int(k): v for k, v in stats["batch_histogram"].items()}
    runs = sum(hist.values())
    return round(sum(k * v for k, v in hist.items()) / runs, 2) if runs else 0.0


async def measure(models_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"models": {}, "memory": {}}
    # max_run_ms as ResourcePool.from_settings sets it: half the 150 ms analyzer budget
    common: dict[str, Any] = {"max_batch": 16, "max_wait_ms": 4.0, "max_run_ms": 75.0}
    pools = {
        "serial": ResourcePool(models_dir, batching=False),
        "batched": ResourcePool(models_dir, **common, calibrate=False),
        "calibrated": ResourcePool(models_dir, **common),
        "calibrated_2runs": ResourcePool(models_dir, **common, runs_in_flight=2),  # cores/2 threads each
    }
    if args.levers:  # two runs side by side, each still on every core (0 = onnxruntime's one per core)
        pools["inflight2_allcores"] = ResourcePool(models_dir, **common, runs_in_flight=2, intra_op_threads=0)
    for pool in pools.values():
        await pool.__aenter__()
        layout = "yolov5" if args.real else "yolov8"
        pool.register(ModelSpec(name=DETECTOR, kind="detector", path=models_dir / "yolo320.onnx",
                                layout=layout, class_names=tuple(f"c{i}" for i in range(80))))  # fmt: skip
    try:
        for model in (VAD, DETECTOR):
            item = tuple(int(d) for d in pools["batched"].spec(model).item_shape)  # type: ignore[arg-type]
            for pool in pools.values():  # load + warm up outside the timed runs
                await asyncio.gather(*(pool.infer(model, np.zeros(item, np.float32)) for _ in range(16)))
            for mode in pools:
                if (cal := pools[mode].stats(model)[0]["calibration"])["reason"] != "disabled":
                    curve = {p["batch"]: p["per_item_ms"] for p in cal["curve"]}
                    chosen = f"max_batch {cal['max_batch']} ({cal['reason']})"
                    print(f"  {model} {mode}: {chosen}, ms/item by batch {curve}", flush=True)
            per_n: dict[str, Any] = {}
            for n in args.cameras:
                row: dict[str, Any] = {}
                measured: dict[str, list[dict[str, float]]] = {mode: [] for mode in pools}
                for _ in range(args.repeats):  # modes interleaved: both see the same background load
                    for mode, pool in pools.items():
                        measured[mode].append(await drive(pool, model, item, n, args.seconds))
                        if mode == "batched" and model == DETECTOR and n in (1, 16):
                            out["memory"][f"rss_mb_{n}_cameras"] = rss_mb()
                for mode, runs in measured.items():
                    row[mode] = {
                        "throughput": round(statistics.median(r["throughput"] for r in runs), 1),
                        "p95_ms": round(statistics.median(r["p95_ms"] for r in runs), 2),
                        "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
                        "cpu_ms_per_item": round(statistics.median(r["cpu_ms_per_item"] for r in runs), 3),
                        "runs": [round(r["throughput"], 1) for r in runs],
                    }
                serial = row["serial"]["throughput"]
                row["speedup"] = round(row["batched"]["throughput"] / serial, 2)
                for mode in (m for m in pools if m not in ("serial", "batched")):
                    row[f"speedup_{mode}"] = round(row[mode]["throughput"] / serial, 2)
                per_n[str(n)] = row
                cols = [f"{m} {row[m]['throughput']:.1f}/s p95 {row[m]['p95_ms']:.1f} ms" for m in pools]
                speedups = " ".join(f"{k}: x{v}" for k, v in row.items() if "speedup" in k)
                print(f"  {model:14s} N={n:2d}  {' | '.join(cols)} | {speedups}", flush=True)
            out["models"][model] = {
                "input_shape": pools["batched"].stats(model)[0]["input_shape"],
                "provider": pools["batched"].stats(model)[0]["provider"],
                "calibration": pools["calibrated"].stats(model)[0]["calibration"],
                "calibration_1_thread": pools["calibrated_2runs"].stats(model)[0]["calibration"],
                "cameras": per_n,
            }
            for mode in (m for m in pools if m != "serial"):
                stats = pools[mode].stats(model)[0]
                out["models"][model][f"{mode}_pool"] = {
                    "max_batch": stats["max_batch"],
                    "mean_batch": mean_batch(stats),
                    "batch_histogram": stats["batch_histogram"],
                    "queue_wait_ms": stats["queue_wait_ms"],
                    "run_ms": stats["run_ms"],
                }
        out["memory"]["sessions_loaded"] = {m: pools["batched"].stats(m)[0]["loads"] for m in (VAD, DETECTOR)}
    finally:
        for pool in pools.values():
            await pool.__aexit__(None, None, None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point; the median is reported")
    parser.add_argument("--cameras", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16])
    parser.add_argument("--levers", action="store_true", help="also run 2 batches in flight, 1 thread each")
    parser.add_argument(
        "--real", action="store_true", help="the real yolov3-tiny instead of the synthetic graph"
    )
    parser.add_argument("--regions", action="store_true", help="detector modes on real footage (see above)")
    parser.add_argument("--footage-s", type=float, default=30.0, help="--regions: seconds of vtest analysed")
    parser.add_argument("--width", type=int, default=320, help="--regions: the analysed frames' width")
    args = parser.parse_args()
    if args.regions:
        from bench.detector_regions import run_regions

        run_regions(args)
        return
    global DETECTOR, RESULTS
    with tempfile.TemporaryDirectory(prefix="argus-bench-") as tmp:
        models_dir = Path(tmp)
        if args.real:
            from app.inference.install import install_known

            install_known(models_dir, "yolov3-tiny")
            (models_dir / "yolov3-tiny.json").unlink()  # registered below, like the synthetic graph
            (models_dir / "yolov3-tiny.onnx").rename(models_dir / "yolo320.onnx")
            DETECTOR, RESULTS = "yolov3-tiny-416", RESULTS.with_name("inference-real.json")
        else:
            build_detector(models_dir / "yolo320.onnx")
        print(f"inference bench: {os.cpu_count()} CPUs, onnxruntime {ort.__version__}", flush=True)
        started, load_before = time.time(), os.getloadavg()
        result = asyncio.run(measure(models_dir, args))
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "gpu": Path("/dev/nvidia0").exists(),
        # the machine may be shared: other processes' load skews every mode alike (modes interleave)
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "note": "closed loop: each camera sends its next frame when the previous answer arrives",
    }
    result["settings"] = {
        "max_batch": 16,
        "max_wait_ms": 4.0,
        "calibrated_max_run_ms": 75.0,
        "runs_in_flight_2_intra_op_threads": max(1, (os.cpu_count() or 1) // 2),
        "seconds": args.seconds,
        "repeats": args.repeats,
    }
    result["took_s"] = round(time.time() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    top = str(max(args.cameras))
    det, vad = result["models"][DETECTOR]["cameras"][top], result["models"][VAD]["cameras"][top]
    mem, dflt = result["memory"], "calibrated_2runs"
    print(
        f"inference @{top} cameras on {os.cpu_count()} CPUs ({result['models'][DETECTOR]['provider']}), "
        f"vs serial: detector x{det['speedup']} batched, x{det['speedup_calibrated']} calibrated, "
        f"x{det['speedup_' + dflt]} calibrated + 2 runs in flight (default; max_batch "
        f"{result['models'][DETECTOR][dflt + '_pool']['max_batch']}, {det[dflt]['throughput']}/s "
        f"p95 {det[dflt]['p95_ms']} ms vs {det['serial']['throughput']}/s p95 {det['serial']['p95_ms']} ms); "
        f"vad x{vad['speedup']} / x{vad['speedup_calibrated']} / x{vad['speedup_' + dflt]}; "
        f"sessions {mem['sessions_loaded']}; "
        f"RSS {mem.get('rss_mb_1_cameras')} -> {mem.get('rss_mb_16_cameras')} MB (1 -> 16 cameras)"
    )


if __name__ == "__main__":
    main()
