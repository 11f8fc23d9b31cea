"""One training step of a model at a small size, taken apart: forward, backward, optimizer, and the
convolutions whose backward costs most (torch.profiler, grouped by input shape).

    python bench/step_profile.py                     # ResNet34UNet, 32 px, batch 32, one thread: 07's quick run
    python bench/step_profile.py --channels-last          # the same in channels_last memory
    python bench/step_profile.py --no-onednn              # oneDNN (mkldnn) convolutions off: torch's own
    python bench/step_profile.py --model unet --base-channels 16
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from minunet.models import build_model
from threads import cpu_description  # bench/threads.py: model, cores, vector flags


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resunet34")
    parser.add_argument("--base-channels", type=int, default=16, help="the U-Net's width (unet only)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6, help="timed steps, after one to warm up")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--no-onednn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kwargs = dict(base_channels=args.base_channels) if args.model == "unet" else dict(encoder_weights=None)
    model = build_model(args.model, **kwargs)
    x = torch.randn(args.batch_size, 3, args.size, args.size)
    y = (torch.rand(args.batch_size, 1, args.size, args.size) > 0.5).float()
    if args.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    torch.backends.mkldnn.enabled = not args.no_onednn
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    print(f"{cpu_description()}, capability {torch.backends.cpu.get_cpu_capability()}, {args.threads} thread(s), "
          f"torch {torch.__version__}; {args.model} at {args.size} px, batch {args.batch_size}, fp32"
          + (", channels_last" if args.channels_last else "") + (", oneDNN off" if args.no_onednn else ""))
    times = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        t1 = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        if step:  # the first step warms up
            for name, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[name] += dt / args.steps
    print("seconds a step: " + ", ".join(f"{name} {t:.3f}" for name, t in times.items()) +
          f"; total {sum(times.values()):.3f}")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        F.binary_cross_entropy_with_logits(model(x), y).backward()
    rows = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::convolution_backward"]
    total = sum(e.self_cpu_time_total for e in rows)
    print(f"convolution backward: {total / 1e6:.3f} s in one step; the costliest, by input shape:")
    for e in sorted(rows, key=lambda e: -e.self_cpu_time_total)[:5]:
        print(f"  {e.self_cpu_time_total / 1e3:7.1f} ms over {e.count:2d} calls  input {e.input_shapes[0]}, "
              f"weight {e.input_shapes[2]}")


if __name__ == "__main__":
    main()
