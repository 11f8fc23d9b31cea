"""Speed of minunet's models and loop beside the references, on this machine's CPU (or GPU with --device cuda).

Prints, for each comparison, images/s of both sides, the ratio minunet / reference (median over repeats, with
min-max), and peak memory. Sections:
  1. same network, same settings (fp32, contiguous): ResNet34UNet vs segmentation_models_pytorch's
     Unet("resnet34"), and UNet (base_channels 32, as trained in RESULTS.md) vs a plain reference U-Net of
     the same width, training (forward + backward + Adam) and inference
     (minunet folds BatchNorm into the convolutions, or compiles the model with torch.compile; both sides
     use torch.inference_mode);
  2. what each speed-up buys (channels_last, fused Adam, bf16 autocast, BatchNorm folding, inference_mode,
     torch.compile; the reference compiled too, to show what compiling alone buys);
  3. end to end: minunet.training.loop.fit (--precision auto) vs a plain fp32 loop, and minunet.cli.predict.predict (eager
     and compiled) vs plain fp32 inference image by image and in batches, on the same files; and the data
     pipeline's samples/s;
  4. the peak tensor memory of each model pair, training and inference (torch.profiler: repeatable);
  5. the input pipeline alone: augmented samples/s through a DataLoader with 0, 1 and 2 worker processes at
     128, 256 and 512 px, beside the model's own training step at that size (can the data keep up?).

    python bench/speed.py            # about 40 minutes on 2 CPU cores
    python bench/speed.py --sections 5   # the input pipeline alone, a few minutes
    python bench/speed.py --tiny     # seconds, without torch.compile: keeps the script working (tests/test_bench.py)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F

from minunet import ResNet34UNet, UNet
from minunet.data import data_names, make_dataset
from minunet.device import Runtime
from minunet.losses import BCEDiceLoss
from minunet.inference import Inference, fold_batchnorm, prepare_for_inference
from minunet.cli.predict import Output, predict
from minunet.recipe import Recipe
from minunet.training.loop import fit
from minunet.transforms import tensor_to_pil


class PlainUNet(nn.Module):
    """The reference U-Net: the classic network written the usual way (the same layers as minunet.UNet)."""

    def __init__(self, c=64):
        super().__init__()

        def double(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True),
                                 nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True))

        widths = [c, 2 * c, 4 * c, 8 * c, 16 * c]
        self.downs = nn.ModuleList([double(3, c)] + [double(a, b) for a, b in zip(widths, widths[1:])])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w, w // 2, 2, stride=2) for w in widths[:0:-1])
        self.convs = nn.ModuleList(double(w, w // 2) for w in widths[:0:-1])
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for up, conv, skip in zip(self.ups, self.convs, skips[-2::-1]):
            x = up(x)
            x = conv(torch.cat([skip, F.pad(x, [0, skip.shape[3] - x.shape[3], 0, skip.shape[2] - x.shape[2]])], 1))
        return self.out(x)


PAIRS = [("minunet.ResNet34UNet", "smp.Unet(resnet34)"), ("minunet.UNet", "plain U-Net")]  # (ours, reference)


def make(name, base):
    torch.manual_seed(0)
    return {"minunet.ResNet34UNet": lambda: ResNet34UNet(),
            "smp.Unet(resnet34)": lambda: smp.Unet("resnet34", encoder_weights=None, classes=1),
            "minunet.UNet": lambda: UNet(base_channels=base),
            "plain U-Net": lambda: PlainUNet(base)}[name]()


def batch(size, n, device, channels_last=False):
    x = torch.randn(n, 3, size, size, device=device)
    y = (torch.rand(n, 1, size, size, device=device) > 0.5).float()
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


def train_stepper(model, size, n, device, channels_last=False, fused=False, amp=None, compile=False):
    """A function doing one training step (forward, BCE+Dice, backward, Adam) of `model` on a fixed batch.

    compile=True: the model through torch.compile; it is compiled here, timed.
    """
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4, fused=fused or None)
    x, y = batch(size, n, device, channels_last)
    loss_fn = BCEDiceLoss()
    if compile:
        model = torch.compile(model)
        print(f"  (compiling for training took {seconds(lambda: loss_fn(model(x), y).backward()):.0f} s)", flush=True)

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def infer_stepper(model, size, n, device, channels_last=False, fold=False, mode="inference", compile=False):
    """A function doing one forward pass of `model` in eval mode on a fixed batch.

    compile=True: minunet's compiled form (prepare_for_inference), contiguous; it is compiled here, timed.
    """
    model = model.to(device).eval()
    if fold:
        fold_batchnorm(model)
    if compile:
        model = prepare_for_inference(model, device, compile=True)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, _ = batch(size, n, device, channels_last)
    context = torch.inference_mode if mode == "inference" else torch.no_grad

    def step():
        with context():
            model(x)
    if compile:
        print(f"  (compiling for inference took {seconds(step):.0f} s)", flush=True)
    return step


def seconds(work):
    """The wall-clock seconds one call of work() takes."""
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def race(steppers, n_images, steps, repeats, device):
    """Alternate the steppers `steps` steps at a time, `repeats` rounds; images/s per stepper per round."""
    for step in steppers.values():  # warm-up: allocator, oneDNN kernel choice
        step()
        step()
    rates = {name: [] for name in steppers}
    cpu_times = read_cpu_times()
    for _ in range(repeats):
        for name, step in steppers.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            rates[name].append(steps * n_images / (time.perf_counter() - t0))
    rates["steal"] = steal_share(cpu_times, read_cpu_times())
    return rates


def read_cpu_times():
    """The machine's CPU time counters (/proc/stat's first line: user, nice, system, idle, ..., steal), or None."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None


def steal_share(before, after):
    """The share of CPU time the hypervisor gave to other virtual machines between two readings (or None)."""
    if not before or not after or len(before) < 8:
        return None
    delta = [b - a for a, b in zip(before, after)]
    return delta[7] / max(1, sum(delta[:8]))


def report(title, rates, reference):
    """Print each stepper's median images/s and its ratio to `reference` (median, min-max over rounds)."""
    steal = rates.pop("steal", None)
    stolen = f"   (CPU time stolen by the hypervisor meanwhile: {steal:.0%})" if steal is not None else ""
    print(f"\n{title}{stolen}")
    for name, r in rates.items():
        ratios = [a / b for a, b in zip(r, rates[reference])]
        line = f"  {name:<44} {statistics.median(r):7.2f} img/s"
        if name != reference:
            line += f"   x{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
        print(line, flush=True)


def peak_memory_mib(name, base, size, n, mode, repeats=3):
    """Peak resident memory (MiB, VmHWM) of a fresh process running 3 steps of one model (Linux, CPU): the
    median of `repeats` processes (it varies by up to 10 % from process to process; section 4 is exact)."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import speed, torch; "
            f"step = speed.{mode}_stepper(speed.make({name!r}, {base}), {size}, {n}, torch.device('cpu')); "
            f"[step() for _ in range(3)]; "
            f"print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            for _ in range(repeats)]
    return statistics.median(int(out.stdout.split()[-1]) / 1024 for out in runs)


# ---------------------------------------------------------------------------------------------------------

def same_network(args, device):
    print("== 1. same network, same settings (fp32, contiguous); inference: minunet folds BatchNorm, and "
          "(row 3) compiles")
    for ours, ref in PAIRS:
        for size, n in args.shapes:
            rates = race({ref: train_stepper(make(ref, args.base), size, n, device),
                          ours: train_stepper(make(ours, args.base), size, n, device)},
                         n, args.steps, args.repeats, device)
            report(f"train {size} px, batch {n}", rates, ref)
            steppers = {ref: infer_stepper(make(ref, args.base), size, n, device),
                        ours: infer_stepper(make(ours, args.base), size, n, device, fold=True)}
            if args.compile:
                steppers[ours + ", compiled"] = infer_stepper(make(ours, args.base), size, n, device, compile=True)
            rates = race(steppers, n, args.steps, args.repeats, device)
            report(f"inference {size} px, batch {n}", rates, ref)
            if device.type == "cpu" and sys.platform == "linux":
                for mode in ("train",) if args.tiny else ("train", "infer"):
                    mib = {m: peak_memory_mib(m, args.base, size, n, mode, 1 if args.tiny else 3) for m in (ref, ours)}
                    print(f"  peak memory, {mode}: " + ", ".join(f"{m} {v:.0f} MiB" for m, v in mib.items()))


def ablation(args, device):
    size, n = args.shapes[0]
    print(f"\n== 2. what each change buys: ResNet34UNet, {size} px, batch {n}")
    m = "minunet.ResNet34UNet"
    rates = race({"fp32, contiguous (baseline)": train_stepper(make(m, 0), size, n, device),
                  "+ channels_last": train_stepper(make(m, 0), size, n, device, channels_last=True),
                  "+ channels_last + fused Adam": train_stepper(make(m, 0), size, n, device, True, fused=True),
                  "+ channels_last + bf16 autocast": train_stepper(make(m, 0), size, n, device, True,
                                                                   amp=torch.bfloat16),
                  **({"torch.compile, contiguous": train_stepper(make(m, 0), size, n, device, compile=True)}
                     if args.compile else {})},
                 n, args.steps, args.repeats, device)
    report("train", rates, "fp32, contiguous (baseline)")
    rates = race({"fp32, contiguous, no_grad (baseline)": infer_stepper(make(m, 0), size, n, device, mode="no_grad"),
                  "+ inference_mode": infer_stepper(make(m, 0), size, n, device),
                  "+ inference_mode + BatchNorm folded": infer_stepper(make(m, 0), size, n, device, fold=True),
                  "+ ... + channels_last": infer_stepper(make(m, 0), size, n, device, True, fold=True),
                  "+ ... + channels_last + bf16 autocast": bf16_infer_stepper(make(m, 0), size, n, device),
                  **({"torch.compile (BatchNorm folded, frozen)": infer_stepper(make(m, 0), size, n, device,
                                                                                 compile=True),
                      "smp.Unet(resnet34), compiled the same way": infer_stepper(make("smp.Unet(resnet34)", 0),
                                                                                 size, n, device, compile=True)}
                     if args.compile else {})},
                 n, args.steps, args.repeats, device)
    report("inference", rates, "fp32, contiguous, no_grad (baseline)")


def bf16_infer_stepper(model, size, n, device):
    """Like infer_stepper with BatchNorm folded and channels_last, under bf16 autocast."""
    model = prepare_for_inference(model, device)
    x, _ = batch(size, n, device, channels_last=True)

    def step():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            model(x)
    return step


def tensor_memory(args, device):
    """Section 4: the peak of tensor memory (weights, gradients, Adam's state, activations), as torch.profiler
    records the allocations, from building each model through 3 steps."""
    print("\n== 4. peak tensor memory, from building the model through 3 steps (torch.profiler; repeatable to "
          "the byte, unlike a process's peak)")
    for ours, ref in PAIRS:
        for size, n in args.shapes:
            for mode in ("train", "infer"):
                stepper = globals()[f"{mode}_stepper"]
                mib = {m: peak_tensor_mib(lambda: stepper(make(m, args.base), size, n, device)) for m in (ref, ours)}
                print(f"  {mode} {size} px, batch {n}: " + ", ".join(f"{m} {v:.2f} MiB" for m, v in mib.items()))


def peak_tensor_mib(make_step):
    """The highest sum of bytes allocated minus bytes released, over make_step() and 3 calls of the step."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step = make_step()
        for _ in range(3):
            step()
    changes = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]")
    held = peak = 0
    for _, nbytes in changes:  # an allocation is a positive number of bytes, a release a negative one
        held += nbytes
        peak = max(peak, held)
    return peak / 2**20


def end_to_end(args, device):
    size, n = args.shapes[0]
    print(f"\n== 3. end to end, ResNet34UNet, {size} px, batch {n}, {args.data} data")
    train_set = make_dataset(args.data, "train", args.data_root, size, augment=True, limit=args.e2e_images)
    val_set = make_dataset(args.data, "val", args.data_root, size, limit=2 * n)

    # the data pipeline alone: augmented samples per second
    t0 = time.perf_counter()
    for i in range(len(train_set)):
        train_set[i]
    data_rate = len(train_set) / (time.perf_counter() - t0)

    # minunet's loop (--precision auto), one epoch, as history.csv reports it
    torch.manual_seed(0)
    model = ResNet34UNet(train_set.spec.outputs, in_channels=train_set.spec.channels)  # the data's classes
    history = fit(model, train_set, val_set, Recipe(epochs=1, batch_size=n), Runtime(device), log=None)
    ours = history[-1]["train_images_per_s"]

    # a plain fp32 loop over the same network and images: contiguous tensors, default Adam, no autocast
    torch.manual_seed(0)
    model = ResNet34UNet().to(device).train()
    opt, loss_fn = torch.optim.Adam(model.parameters(), 1e-3), BCEDiceLoss()
    loader = torch.utils.data.DataLoader(train_set, batch_size=n, shuffle=True, drop_last=True)
    t0, seen = time.perf_counter(), 0
    for images, masks, _ in loader:
        loss = loss_fn(model(images.to(device)), masks.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(images)
    sync(device)
    plain = seen / (time.perf_counter() - t0)
    print(f"  training: minunet fit (--precision auto) {ours:.2f} img/s, plain fp32 loop {plain:.2f} img/s: "
          f"x{ours / plain:.2f}")
    print(f"  data pipeline (decode-free, augmented): {data_rate:.0f} samples/s = {data_rate / ours:.0f}x the "
          f"model's training rate")

    # prediction from image files: minunet.cli.predict.predict vs the same work done by a plain fp32 script, image by
    # image and in batches of n
    with tempfile.TemporaryDirectory() as tmp:
        paths, out = write_images(train_set, tmp), os.path.join(tmp, "ours")
        model, rates = ResNet34UNet().eval(), {}
        with torch.no_grad():
            rates["plain fp32, one image at a time"] = len(paths) / seconds(lambda: plain_predict(model, paths, size,
                                                                                                   device, 1))
            rates[f"plain fp32, batches of {n}"] = len(paths) / seconds(lambda: plain_predict(model, paths, size,
                                                                                               device, n))
        one_pass = Inference(size=size, tta=False)  # the forward passes alone, as the plain script does
        rates["minunet predict"] = len(paths) / seconds(lambda: predict(model, paths, out, one_pass,
                                                                       Runtime(device, batch_size=n),
                                                                       Output(overwrite=True)))
        if args.compile:
            # every call compiles anew (quicker once the first has filled inductor's cache), so the compiled
            # model's own rate is the difference between a call on n images and a call on all of them
            def compiled(some):
                return seconds(lambda: predict(model, some, out, one_pass, Runtime(device, batch_size=n, compile=True),
                                               Output(overwrite=True)))
            first = compiled(paths[:n])
            few, every = compiled(paths[:n]), compiled(paths)
            rates["minunet predict --compile, once compiled"] = (len(paths) - n) / (every - few)
            print(f"  predict --compile: {first:.0f} s for its first {n} images (compiling), then {few:.0f} s on "
                  f"a later call; {len(paths)} images in {every:.0f} s")
    plain = rates["plain fp32, one image at a time"]
    for name, rate in rates.items():
        print(f"  prediction: {name:<44} {rate:7.2f} img/s   x{rate / plain:.2f}")


def write_images(dataset, folder):
    """Save the dataset's stored uint8 images as PNG files; return their paths."""
    paths = []
    for i in range(len(dataset)):
        path = os.path.join(folder, f"{dataset.ids[i]}.png")
        tensor_to_pil(dataset.images[i]).save(path)
        paths.append(path)
    return paths


def plain_predict(model, paths, size, device, n):
    """What a plain fp32 script does, n images at a time: decode, resize, normalise, forward, up-sample,
    threshold, save."""
    from PIL import Image
    from minunet.transforms import Normalize, Resize, pil_to_tensor
    resize, normalize = Resize(size), Normalize()
    model = model.to(device)
    for start in range(0, len(paths), n):
        images = [pil_to_tensor(Image.open(path)) for path in paths[start:start + n]]
        small = torch.stack([normalize(*resize(image, torch.zeros(1, *image.shape[1:])))[0] for image in images])
        probs = torch.sigmoid(model(small.to(device)))
        for path, image, prob in zip(paths[start:start + n], images, probs):
            mask = F.interpolate(prob[None], size=image.shape[1:], mode="bilinear") > 0.5
            tensor_to_pil(mask[0].to(torch.uint8) * 255).save(
                os.path.join(os.path.dirname(path), "plain_" + os.path.basename(path)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, to keep the script working")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="synthetic", choices=data_names(), metavar="NAME",
                        help="a MedSegBench name, an ISIC challenge, folder or synthetic (default synthetic)")
    parser.add_argument("--data-root", default="../shared/data/isic2016")
    parser.add_argument("--sections", default="12345", help="which sections to run, e.g. 13")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="leave out torch.compile")
    args = parser.parse_args()
    args.compile = args.compile and not args.tiny
    torch._dynamo.config.recompile_limit = 64  # each compiled copy of a model is a recompile: never fall back
    torch._dynamo.config.fail_on_recompile_limit_hit = True  # to eager silently
    if args.tiny:
        args.shapes, args.steps, args.repeats, args.base, args.e2e_images = [(64, 2)], 1, 1, 8, 4
    else:
        args.shapes, args.steps, args.repeats, args.base, args.e2e_images = [(128, 16), (256, 8)], 2, 5, 32, 96
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else f", {cpu_name()}"))
    if "1" in args.sections:
        same_network(args, device)
    if "2" in args.sections:
        ablation(args, device)
    if "3" in args.sections:
        end_to_end(args, device)
    if "4" in args.sections:
        tensor_memory(args, device)
    if "5" in args.sections:
        input_pipeline(args, device)


def input_pipeline(args, device):
    """Samples/s of the augmented synthetic data through a DataLoader (0, 1, 2 workers), beside the
    ResNet34UNet's training step (channels_last, --precision auto) at the same size and batch."""
    from torch.utils.data import DataLoader

    from minunet.device import choose_device

    print("\n== 5. input pipeline alone (augmented samples/s, DataLoader) beside the model's training step")
    _, amp = choose_device(device, "auto")
    for size, n in ([(64, 4)] if args.tiny else [(128, 16), (256, 8), (512, 4)]):
        dataset = make_dataset("synthetic", "train", size=size, augment=True, limit=4 * n)
        rates = []
        for workers in (0, 1, 2):
            loader = DataLoader(dataset, batch_size=n, num_workers=workers, persistent_workers=workers > 0)
            for _ in loader:  # a first epoch starts the workers
                pass
            rates.append(len(dataset) * args.repeats / seconds(lambda: [None for _ in range(args.repeats)
                                                                        for _ in loader]))
        step = train_stepper(ResNet34UNet(), size, n, device, channels_last=True, amp=amp)
        model = statistics.median(race({"model": step}, n, args.steps, args.repeats, device)["model"])
        print(f"  {size} px, batch {n}: data {rates[0]:.0f} / {rates[1]:.0f} / {rates[2]:.0f} samples/s with 0 / 1 / 2 "
              f"workers; the model trains {model:.1f} images/s (data / model with 0 workers: x{rates[0] / model:.1f})",
              flush=True)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    main()
