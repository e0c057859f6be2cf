"""yolov3-tiny (Argus's Darknet->ONNX conversion) on a GPU, batch 1/4/16, fp32 and fp16.

The lent GPU machine has PyTorch but only the CPU build of onnxruntime (the CUDA build is too large to carry
there), so the same ONNX graph runs through PyTorch (onnx2torch) on CUDA, checked against onnxruntime on CPU.
Run next to a converted model (`argus models install yolov3-tiny`, then copy yolov3-tiny.onnx beside it):

    python bench/detector_gpu.py    # prints JSON; writes $OUT/gpu.json when OUT is set
"""

import json
import os
import time

import numpy as np
import onnx

out = {}
path = os.path.join(os.path.dirname(__file__), "yolov3-tiny.onnx")
x = {b: np.random.default_rng(0).random((b, 3, 416, 416), dtype=np.float32) for b in (1, 4, 16)}
try:
    import onnxruntime as ort

    out["ort_providers"] = ort.get_available_providers()
    cpu = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ref = cpu.run(None, {"images": x[4]})[0]
except Exception as e:
    out["ort_error"] = repr(e)
    ref = None
import torch  # noqa: E402  (after onnxruntime: its reference run needs no torch)
from onnx2torch import convert  # noqa: E402

m = convert(onnx.load(path)).eval()
if ref is not None:
    with torch.no_grad():
        got = m(torch.from_numpy(x[4])).numpy()
    out["torch_cpu_vs_ort_max_abs"] = float(np.abs(got - ref).max())
if torch.cuda.is_available():
    out["gpu"] = torch.cuda.get_device_name(0)
    for dtype in (torch.float32, torch.float16):
        mm = m.to("cuda", dtype)
        res = {}
        for b, arr in x.items():
            t = torch.from_numpy(arr).to("cuda", dtype)
            with torch.no_grad():
                for _ in range(10):
                    mm(t)
                torch.cuda.synchronize()
                n = 50
                t0 = time.perf_counter()
                for _ in range(n):
                    y = mm(t)
                torch.cuda.synchronize()
                ms = (time.perf_counter() - t0) / n * 1000
            res[b] = {
                "ms_per_batch": round(ms, 3),
                "ms_per_image": round(ms / b, 3),
                "images_per_s": round(b * 1000 / ms),
            }
        out[f"torch_cuda_{str(dtype).split('.')[-1]}"] = res
        if ref is not None and dtype == torch.float32:
            with torch.no_grad():
                g = mm(torch.from_numpy(x[4]).cuda()).float().cpu().numpy()
            out["torch_cuda_vs_ort_cpu_max_abs"] = float(np.abs(g - ref).max())
print(json.dumps(out, indent=1))
if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], "gpu.json"), "w") as f:
        f.write(json.dumps(out, indent=1))
