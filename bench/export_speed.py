"""Inference speed of the exported models (onnxruntime, TorchScript) beside minunet's own eager model, on the CPU.

For each model (UNet of width 16, the default of `minunet train`, and ResNet34UNet; random weights: speed does
not depend on them) and each batch (one image, 16 images) at 128 px, fp32, the probabilities of:
  eager                   the model as trained (BatchNorm unfolded, contiguous), torch.inference_mode: the baseline
  eager, predict's copy   minunet.inference.prepare_for_inference: BatchNorm folded, channels_last (minunet predict)
  TorchScript             the file `minunet export --format torchscript` writes, run by torch.jit
  onnxruntime             the file `minunet export --format onnx` writes, run by onnxruntime's CPU provider
onnxruntime gets as many threads as torch. The runtimes alternate within each round (so all see the same
machine load), after warm-up calls; printed: the median images/s over rounds and the ratio to eager
(median, min-max), and the load average and the CPU time stolen by the hypervisor over the measurement.

    python bench/export_speed.py          # about 5 minutes on 2 CPU cores
    python bench/export_speed.py --tiny   # seconds: keeps the script working (tests/test_export.py)
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

import torch

from minunet import ResNet34UNet, UNet
from minunet.cli.export import ExportModel, export_model
from minunet.inference import prepare_for_inference

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")  # what oneDNN and ORT use


def cpu_description():
    """The CPU's model name, core count and the vector flags that matter for fp32/bf16 inference."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line for line in lines if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return f"{platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores"
    present = " ".join(f for f in CPU_FLAGS if f in flags) or f"none of {' '.join(CPU_FLAGS)}"
    return f"{name}, {os.cpu_count()} cores, flags: {present}"


def stolen_and_busy():
    """(/proc/stat's steal ticks, all ticks), to measure the hypervisor's share over a span; None off Linux."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return None
    return ticks[7], sum(ticks)


def runners(model, folder, onnxruntime, threads):
    """{name: function(images) -> probabilities} for the four ways of running `model`."""
    eager = ExportModel(model.eval()).eval()
    copy = ExportModel(prepare_for_inference(model, torch.device("cpu"))).eval()
    paths = {fmt: os.path.join(folder, f"{type(model).__name__}.{fmt}") for fmt in ("onnx", "torchscript")}
    for fmt, path in paths.items():
        export_model(model, path, fmt, (128, 128))  # checked against the eager model on the way
    with warnings.catch_warnings():  # torch >= 2.10 calls TorchScript deprecated; it still runs
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(paths["torchscript"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(paths["onnx"], options, providers=["CPUExecutionProvider"])

    def torch_runner(module):
        def run(images):
            with torch.inference_mode():
                return module(images)
        return run

    run_copy = torch_runner(copy)
    return {"eager": torch_runner(eager),
            "eager, predict's copy": lambda images: run_copy(images.contiguous(memory_format=torch.channels_last)),
            "TorchScript": torch_runner(scripted),
            "onnxruntime": lambda images: session.run(None, {"images": images.numpy()})[0]}


def race(runs, images, calls, rounds):
    """{name: [images/s of each round]}: the runners alternate, `calls` calls each per round, after 2 warm-ups."""
    for run in runs.values():
        run(images)
        run(images)
    rates = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(calls):
                run(images)
            rates[name].append(calls * len(images) / (time.perf_counter() - start))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a U-Net of width 4 at 64 px, batches 1 and 2, 1 round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import onnxruntime

    threads = torch.get_num_threads()
    size, batches, rounds = (64, (1, 2), 1) if args.tiny else (128, (1, 16), args.rounds)
    models = {"UNet(base_channels=16)": lambda: UNet(base_channels=16), "ResNet34UNet": lambda: ResNet34UNet()}
    if args.tiny:
        models = {"UNet(base_channels=4)": lambda: UNet(base_channels=4)}
    print(f"{cpu_description()}\npython {platform.python_version()}, torch {torch.__version__} ({threads} threads), "
          f"onnxruntime {onnxruntime.__version__} ({threads} intra-op threads), fp32, {size} px\n"
          f"command: {' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}\n"
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    before = stolen_and_busy()
    with tempfile.TemporaryDirectory() as folder:
        for title, make in models.items():
            torch.manual_seed(0)
            runs = runners(make(), folder, onnxruntime, threads)
            for batch in batches:
                images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
                calls = max(1, (4 if args.tiny else 32) // batch)
                rates = race(runs, images, calls, rounds)
                print(f"\n{title}, batch {batch} ({rounds} rounds of {calls} call(s))")
                for name, got in rates.items():
                    ratios = [a / b for a, b in zip(got, rates["eager"])]
                    line = f"  {name:<24} {statistics.median(got):8.2f} img/s"
                    if name != "eager":
                        line += f"   x{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
                    print(line, flush=True)
    after = stolen_and_busy()
    share = (after[0] - before[0]) / max(1, after[1] - before[1]) if before and after else None
    steal = f"; CPU time stolen by the hypervisor meanwhile: {share:.0%}" if share is not None else ""
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}{steal}")


if __name__ == "__main__":
    main()
