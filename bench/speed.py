"""Speed of minunet's models and loop beside the references, on this machine's CPU (or GPU with --device cuda).

Prints, for each comparison, images/s of both sides, the ratio minunet / reference (median over repeats, with
min-max), and peak memory. Sections:
  1. same network, same settings (fp32, contiguous): ResNet34UNet vs segmentation_models_pytorch's
     Unet("resnet34"), and UNet (base_channels 32, as trained in RESULTS.md) vs a plain reference U-Net of
     the same width, training (forward + backward + Adam) and inference
     (minunet folds BatchNorm into the convolutions; both sides use torch.inference_mode);
  2. what each speed-up buys (channels_last, fused Adam, bf16 autocast, BatchNorm folding, inference_mode);
  3. end to end: minunet.train.fit (--precision auto) vs a plain fp32 loop, and minunet.train.predict vs
     plain fp32 inference, on the same images; and the data pipeline's samples/s.

    python bench/speed.py            # about 15 minutes on 2 CPU cores
    python bench/speed.py --tiny     # a few seconds: keeps the script working (tests/test_bench.py)
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
from minunet.data import make_dataset
from minunet.losses import BCEDiceLoss
from minunet.train import fit, fold_batchnorm, predict, prepare_for_inference
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


def train_stepper(model, size, n, device, channels_last=False, fused=False, amp=None):
    """A function doing one training step (forward, BCE+Dice, backward, Adam) of `model` on a fixed batch."""
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4, fused=fused or None)
    x, y = batch(size, n, device, channels_last)
    loss_fn = BCEDiceLoss()

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def infer_stepper(model, size, n, device, channels_last=False, fold=False, mode="inference"):
    """A function doing one forward pass of `model` in eval mode on a fixed batch."""
    model = model.to(device).eval()
    if fold:
        fold_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, _ = batch(size, n, device, channels_last)
    context = torch.inference_mode if mode == "inference" else torch.no_grad

    def step():
        with context():
            model(x)
    return step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def race(steppers, n_images, steps, repeats, device):
    """Alternate the steppers `steps` steps at a time, `repeats` rounds; images/s per stepper per round."""
    for step in steppers.values():  # warm-up: allocator, oneDNN kernel choice
        step()
        step()
    rates = {name: [] for name in steppers}
    for _ in range(repeats):
        for name, step in steppers.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            rates[name].append(steps * n_images / (time.perf_counter() - t0))
    return rates


def report(title, rates, reference):
    """Print each stepper's median images/s and its ratio to `reference` (median, min-max over rounds)."""
    print(f"\n{title}")
    for name, r in rates.items():
        ratios = [a / b for a, b in zip(r, rates[reference])]
        line = f"  {name:<44} {statistics.median(r):7.2f} img/s"
        if name != reference:
            line += f"   x{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
        print(line, flush=True)


def peak_memory_mib(name, base, size, n, mode):
    """Peak resident memory (MiB, VmHWM) of a fresh process running 3 steps of one model (Linux, CPU)."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import speed, torch; "
            f"step = speed.{mode}_stepper(speed.make({name!r}, {base}), {size}, {n}, torch.device('cpu')); "
            f"[step() for _ in range(3)]; "
            f"print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


# ---------------------------------------------------------------------------------------------------------

def same_network(args, device):
    print("== 1. same network, same settings (fp32, contiguous); inference: minunet folds BatchNorm")
    pairs = [("minunet.ResNet34UNet", "smp.Unet(resnet34)"), ("minunet.UNet", "plain U-Net")]
    for ours, ref in pairs:
        for size, n in args.shapes:
            rates = race({ref: train_stepper(make(ref, args.base), size, n, device),
                          ours: train_stepper(make(ours, args.base), size, n, device)},
                         n, args.steps, args.repeats, device)
            report(f"train {size} px, batch {n}", rates, ref)
            rates = race({ref: infer_stepper(make(ref, args.base), size, n, device),
                          ours: infer_stepper(make(ours, args.base), size, n, device, fold=True)},
                         n, args.steps, args.repeats, device)
            report(f"inference {size} px, batch {n}", rates, ref)
            if device.type == "cpu" and sys.platform == "linux":
                for mode in ("train",) if args.tiny else ("train", "infer"):
                    mib = {m: peak_memory_mib(m, args.base, size, n, mode) for m in (ref, ours)}
                    print(f"  peak memory, {mode}: " + ", ".join(f"{m} {v:.0f} MiB" for m, v in mib.items()))


def ablation(args, device):
    size, n = args.shapes[0]
    print(f"\n== 2. what each change buys: ResNet34UNet, {size} px, batch {n}")
    m = "minunet.ResNet34UNet"
    rates = race({"fp32, contiguous (baseline)": train_stepper(make(m, 0), size, n, device),
                  "+ channels_last": train_stepper(make(m, 0), size, n, device, channels_last=True),
                  "+ channels_last + fused Adam": train_stepper(make(m, 0), size, n, device, True, fused=True),
                  "+ channels_last + bf16 autocast": train_stepper(make(m, 0), size, n, device, True,
                                                                   amp=torch.bfloat16)},
                 n, args.steps, args.repeats, device)
    report("train", rates, "fp32, contiguous (baseline)")
    rates = race({"fp32, contiguous, no_grad (baseline)": infer_stepper(make(m, 0), size, n, device, mode="no_grad"),
                  "+ inference_mode": infer_stepper(make(m, 0), size, n, device),
                  "+ inference_mode + BatchNorm folded": infer_stepper(make(m, 0), size, n, device, fold=True),
                  "+ ... + channels_last": infer_stepper(make(m, 0), size, n, device, True, fold=True),
                  "+ ... + channels_last + bf16 autocast": bf16_infer_stepper(make(m, 0), size, n, device)},
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
    history = fit(ResNet34UNet(), train_set, val_set, out_dir=None, epochs=1, batch_size=n, device=device,
                  precision="auto", show_progress=False, log=lambda line: None)
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

    # prediction from image files: minunet.train.predict vs the same work with a plain fp32 model
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(val_set, tmp)
        model = ResNet34UNet().eval()
        t0 = time.perf_counter()
        predict(model, paths, os.path.join(tmp, "ours"), size, device=device)
        ours = len(paths) / (time.perf_counter() - t0)
        model = ResNet34UNet().eval()
        torch.set_grad_enabled(False)
        t0 = time.perf_counter()
        plain_predict(model, paths, size, device)
        plain = len(paths) / (time.perf_counter() - t0)
        torch.set_grad_enabled(True)
    print(f"  prediction: minunet predict {ours:.2f} img/s, plain fp32 inference {plain:.2f} img/s: "
          f"x{ours / plain:.2f}")


def write_images(dataset, folder):
    """Save the dataset's stored uint8 images as PNG files; return their paths."""
    paths = []
    for i in range(len(dataset)):
        path = os.path.join(folder, f"{dataset.ids[i]}.png")
        tensor_to_pil(dataset.images[i]).save(path)
        paths.append(path)
    return paths


def plain_predict(model, paths, size, device):
    """What a plain fp32 script does per image: decode, resize, normalise, forward, up-sample, threshold."""
    from PIL import Image
    from minunet.transforms import Normalize, Resize, pil_to_tensor
    resize, normalize = Resize(size), Normalize()
    model = model.to(device)
    for path in paths:
        image = pil_to_tensor(Image.open(path))
        small, _ = normalize(*resize(image, torch.zeros(1, *image.shape[1:])))
        probs = torch.sigmoid(model(small[None].to(device)))
        mask = F.interpolate(probs, size=image.shape[1:], mode="bilinear") > 0.5
        tensor_to_pil(mask[0].to(torch.uint8) * 255).save(
            os.path.join(os.path.dirname(path), "plain_" + os.path.basename(path)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, to keep the script working")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="synthetic", choices=["synthetic", "isic2016"])
    parser.add_argument("--data-root", default="../shared/data/isic2016")
    parser.add_argument("--sections", default="123", help="which sections to run, e.g. 13")
    args = parser.parse_args()
    if args.tiny:
        args.shapes, args.steps, args.repeats, args.base, args.e2e_images = [(64, 2)], 1, 1, 8, 4
    else:
        args.shapes, args.steps, args.repeats, args.base, args.e2e_images = [(128, 16), (256, 8)], 3, 3, 32, 96
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else f", {cpu_name()}"))
    if "1" in args.sections:
        same_network(args, device)
    if "2" in args.sections:
        ablation(args, device)
    if "3" in args.sections:
        end_to_end(args, device)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    main()
