# %% [markdown]
# # 11 · Taking a trained model elsewhere: ONNX, TorchScript, torch.hub and a model card
#
# A checkpoint (`best.pt`) needs minunet and Python to run. To use a model in another program (a C++ or C#
# application, a web page, a phone, a server without minunet), it is *exported*: written as a file that holds
# the network's graph of operations and its weights, run by another engine. This tutorial:
#
# - trains a small U-Net (or loads `--checkpoint FILE`) and **prints** what folding BatchNorm does to its
#   graph: the operations of the traced graph counted before and after, and why the outputs stay the same;
# - exports it with `minunet.cli.export.export_checkpoint` to **ONNX** (run by onnxruntime) and **TorchScript**
#   (run by torch.jit, also from C++), runs both on images of two sizes and **prints** how far their
#   probabilities are from minunet's own, and the operations in the ONNX file;
# - **draws** one validation image with minunet's probabilities, onnxruntime's and their difference
#   (`out/11_export_compare.png`);
# - writes and **prints** the model card that goes beside every export, and loads the checkpoint again
#   through `torch.hub`.
#
# **How long it takes.** `--quick`: tutorial 06's quick recipe (a U-Net of width 16, 3 epochs on the 200
# synthetic lesions at 32 px), then the exports: seconds. Without it, the same U-Net first trains for 6 epochs
# at 128 px (bench/RESULTS.md gives training speeds). It needs the export extra: `pip install
# "minunet[export]"` (onnx, onnxscript, onnxruntime).
#
# Run with no arguments (synthetic lesions), `--data-root DIR` (ISIC 2016), `--quick`, or
# `--checkpoint FILE` for any checkpoint written by `fit` or `minunet train`. It ends with exercises; their
# answers are in `tutorials/answers/11_export.md`.

# %%
import argparse
import collections
import json
import os
import sys
import warnings

import torch

from minunet import UNet
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.cli.export import ExportModel, card_path, export_checkpoint
from minunet.cli.rundir import RunFolder
from minunet.data import make_dataset
from minunet.inference import fold_batchnorm
from minunet.recipe import Recipe
from minunet.training import fit

parser = argparse.ArgumentParser(description="Tutorial 11: exporting a model")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="tutorial 06's quick recipe (32 px, 3 epochs): a smoke run")
parser.add_argument("--checkpoint", metavar="FILE", help="export this best.pt or last.pt instead of training one")
parser.add_argument("--out", metavar="DIR", help="where figures, runs and exports go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 32 if args.quick else 128
LIMIT = None  # every image of each split (--data-root: ISIC's 674 and 75)
EPOCHS = 3 if args.quick else 6
BASE = 16
if args.quick:  # tiny tensors: one thread beats several, which mostly wait for each other (by far on a busy machine)
    torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=".*is deprecated.*")  # torch >= 2.10 calls TorchScript deprecated


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


# %% [markdown]
# ## A model to export
#
# Any checkpoint of `fit` or `minunet train` will do: it holds the model's name, arguments and weights, and
# the size and normalisation it was trained with, which the exported file will need too. Without
# `--checkpoint`, a small U-Net is trained here first; a model worth exporting has learnt something, so its
# best validation Dice is printed.

# %%
if args.checkpoint:
    checkpoint = args.checkpoint
else:
    run_dir = os.path.join(OUT, f"11_unet_{DATA}" + ("_quick" if args.quick else ""))
    torch.manual_seed(0)
    recipe = Recipe(epochs=EPOCHS, batch_size=8, base_channels=BASE, size=SIZE)  # the rest: the defaults
    fit(UNet(base_channels=BASE), make_dataset(DATA, "train", args.data_root, SIZE, augment=True, limit=LIMIT),
        make_dataset(DATA, "val", args.data_root, SIZE, limit=LIMIT), recipe,
        on_epoch=RunFolder(run_dir, dict(data=DATA, data_root=args.data_root, limit=LIMIT)), log=None)
    checkpoint = os.path.join(run_dir, "best.pt")
state = load_checkpoint(checkpoint)
model = model_from_checkpoint(state)  # eval mode: BatchNorm uses its running statistics
size = state.size  # (H, W)
print(f"{os.path.relpath(checkpoint)}: {state.model} {state.model_args}, trained at {size[0]} x {size[1]}, "
      f"best validation Dice {state.best_dice:.4f}")

# %% [markdown]
# ## What folding BatchNorm does to the graph
#
# In evaluation mode a BatchNorm layer is a fixed affine map per channel: `y = (x - mean) / s * gamma + beta`
# with `s = sqrt(var + eps)`, all four numbers frozen. The convolution before it is affine too
# (`x = w * input + b`), and two affine maps in a row are one: the convolution with weights `w * gamma / s`
# and bias `(b - mean) * gamma / s + beta` gives the same output alone. `minunet.inference.fold_batchnorm`
# rewrites every conv -> BatchNorm pair that way and puts an identity where each BatchNorm was: one operation
# fewer per pair, less memory traffic, and the same numbers up to float rounding.
#
# Tracing runs the model once on an example and records every operation it performs: the graph an exporter
# writes. Its operations, counted before and after folding:

# %%
channels = state.model_args.get("in_channels", 3)
example = torch.randn(1, channels, *size)  # (1, C, H, W)
folded = fold_batchnorm(model_from_checkpoint(state))
graphs = {}
for name, net in (("as trained", model), ("BatchNorm folded", folded)):
    traced = torch.jit.trace(ExportModel(net), example)
    graphs[name] = collections.Counter(node.kind() for node in traced.inlined_graph.nodes()
                                       if node.kind().startswith("aten::"))  # aten:: = a tensor operation
for name, ops in graphs.items():
    print(f"{name:17s} {sum(ops.values()):3d} operations: " + ", ".join(
        f"{kind[6:]} {n}" for kind, n in ops.most_common(5)))
with torch.no_grad():
    change = (torch.sigmoid(folded(example)) - torch.sigmoid(model(example))).abs().max().item()
print(f"{graphs['as trained']['aten::batch_norm']} batch_norm operations gone; the probabilities moved by at "
      f"most {change:.1g}")

# %% [markdown]
# ## Exporting to ONNX and TorchScript
#
# `export_checkpoint(state, model, path, format)`, what `minunet export` runs, folds BatchNorm in a copy of
# the model, wraps it so that it returns probabilities (`ExportModel`: the sigmoid of the logits for one
# output channel, the softmax over channels for several; `logits=True` keeps the logits), writes the file,
# and runs it on images of two sizes: above 1e-4 from minunet's own output it raises and keeps nothing.
# Batch, height and width stay free: the file takes any batch of images of at least 32 x 32. Beside the
# file it writes the model card (below).
#
# - **ONNX** is an open format for graphs of tensor operations. The file holds the operations and weights;
#   onnxruntime (Python, C, C++, C#, Java, JavaScript) runs it without PyTorch.
# - **TorchScript** is PyTorch's own serialised graph: `torch.jit.load` reads it in Python without minunet,
#   and libtorch in C++. PyTorch now calls it deprecated in favour of `torch.export`, but it still loads.
#
# The same from the command line (each also writes its model card, `FILE.md`):
#
#     minunet export --checkpoint best.pt --format onnx --output unet.onnx
#     minunet export --checkpoint best.pt --format torchscript --output unet.pt

# %%
export_dir = os.path.join(OUT, "11_export")
os.makedirs(export_dir, exist_ok=True)
files = {"onnx": os.path.join(export_dir, "unet.onnx"), "torchscript": os.path.join(export_dir, "unet.pt")}
for fmt, path in files.items():
    worst = export_checkpoint(state, model, path, fmt, checkpoint_path=checkpoint)  # the file and path + ".md"
    print(f"{fmt:12s} {os.path.relpath(path)}: {os.path.getsize(path) / 1024:.0f} KiB, checked: {worst:.1g} "
          f"from minunet's probabilities; its card {os.path.basename(card_path(path))}")

# %% [markdown]
# Now the files alone, as another program would use them: onnxruntime runs the ONNX file (its inputs and
# outputs are arrays: `.numpy()` and `torch.from_numpy` convert without copying), `torch.jit.load` the
# TorchScript file. Both are compared with minunet's own probabilities, `torch.sigmoid(model(x))`, at the
# training size and at another height and width.

# %%
import onnx  # noqa: E402
import onnxruntime  # noqa: E402

session = onnxruntime.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
scripted = torch.jit.load(files["torchscript"])
val_set = make_dataset(DATA, "val", args.data_root, size, limit=LIMIT)
images = torch.stack([val_set[i][0] for i in range(2)])  # (2, 3, H, W), normalised as in training
taller = torch.nn.functional.interpolate(images[:1], size=(size[0] + 32, size[1] + 64), mode="bilinear")
for batch in (images, taller):
    with torch.no_grad():
        ours = torch.sigmoid(model(batch))  # (B, 1, H, W)
        in_torchscript = scripted(batch)
    in_onnx = torch.from_numpy(session.run(None, {"images": batch.numpy()})[0])
    print(f"images {tuple(batch.shape)}: onnxruntime differs by at most {(in_onnx - ours).abs().max():.1g}, "
          f"TorchScript by {(in_torchscript - ours).abs().max():.1g}")
graph = onnx.load(files["onnx"]).graph
print(f"the ONNX file's {len(graph.node)} operations: " + ", ".join(
    f"{op} {n}" for op, n in collections.Counter(node.op_type for node in graph.node).most_common()))
print("its input: " + " x ".join(d.dim_param or str(d.dim_value) for d in graph.input[0].type.tensor_type.shape.dim))

# %% [markdown]
# The differences are float rounding (about 1e-7): folding and another engine add and multiply in another
# order. No BatchNormalization is left in the ONNX file: minunet folded it first, and the exporter's own
# optimiser would have fused it too (export the unfolded model with `torch.onnx.export(..., dynamo=True)`
# and count again). The Shape, Squeeze, Div, Mul, Sub, Concat, Reshape and Pad operations are the U-Net's
# padding arithmetic, computed from the input's shape inside the file so that any height and width work.
# The ONNX file's metadata property `minunet` holds the size, normalisation and threshold a user of the file
# needs.

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

from minunet.plots import to_display  # noqa: E402

with torch.no_grad():
    ours = torch.sigmoid(model(images[:1]))[0, 0]  # (H, W)
theirs = torch.from_numpy(session.run(None, {"images": images[:1].numpy()})[0])[0, 0]  # (H, W)
panels = [("image", to_display(images[0]).tolist(), None), ("minunet: probability", ours.tolist(), "viridis"),
          ("onnxruntime: probability", theirs.tolist(), "viridis"),
          (f"|difference| (max {(theirs - ours).abs().max():.2g})", (theirs - ours).abs().tolist(), "magma")]
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for ax, (title, picture, cmap) in zip(axes, panels):
    shown = ax.imshow(picture, cmap=cmap, **({"vmin": 0, "vmax": 1} if cmap == "viridis" else {}))
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    if cmap == "magma":
        fig.colorbar(shown, ax=ax, fraction=0.046)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "11_export_compare.png"), dpi=90)
plt.close(fig)
show(os.path.join(OUT, "11_export_compare.png"))

# %% [markdown]
# ## The model card
#
# A file without its story is a trap: which normalisation does it expect, which threshold, trained on
# what, scored how well, and for what use? `minunet export` writes a *model card* beside every export
# (`unet.onnx` -> `unet.onnx.md`), from the checkpoint alone; `minunet export --checkpoint best.pt --card`
# prints it without exporting. What a checkpoint does not hold (minunet 0.1.0's had no loss or threshold)
# the card says is "not recorded" rather than guessing.

# %%
with open(card_path(files["onnx"]), encoding="utf-8") as f:
    print(f.read())

# %% [markdown]
# ## torch.hub
#
# The repository's `hubconf.py` lets other code build minunet's models with one line, without installing
# minunet: `torch.hub.load(REPO, "unet", source="local", base_channels=16)` for a new U-Net, or with
# `checkpoint=PATH` the checkpoint's model with its weights (a checkpoint of the other model is refused).
# With `source="github"` and a repository's name it downloads the repository first. The model returns
# logits, like minunet's own.

# %%
import minunet  # noqa: E402

# the checkout of the repository this minunet is imported from, wherever the script or notebook runs
repo = os.path.dirname(os.path.dirname(os.path.abspath(minunet.__file__)))
if os.path.isfile(os.path.join(repo, "hubconf.py")):
    hub_model = torch.hub.load(repo, state.model, source="local", checkpoint=checkpoint)
    with torch.no_grad():
        same = torch.equal(hub_model(images), model(images))
    print(f"torch.hub.load(REPO, {state.model!r}, source='local', checkpoint=...): "
          f"{type(hub_model).__name__}, the same logits as the checkpoint's model: {same}")
else:
    print(f"no hubconf.py in {repo} (minunet installed, not imported from a checkout): torch.hub skipped")
extra = {"minunet.json": ""}  # torch.jit.load fills in the extra files it is asked for
torch.jit.load(files["torchscript"], _extra_files=extra)
print(f"and what the TorchScript file says of itself: {json.loads(extra['minunet.json'])}")

# %% [markdown]
# bench/RESULTS.md measures how fast onnxruntime and TorchScript run these models beside minunet's own
# (`python bench/export_speed.py`).
#
# ## Exercises
#
# Answers: `tutorials/answers/11_export.md`; the notebook runs them after its last cell. All three run in
# quick mode (`--quick`: seconds), so that your numbers can be checked against the answers.
#
# 1. **Logits.** *Quick mode.* Export with `logits=True` and compare the file's output with `model(x)` instead
#    of its sigmoid. Which threshold on the logits gives the same masks as the probability threshold 0.5?
# 2. **Tracing in training mode.** *Quick mode.* Trace a U-Net *without* folding, in training mode, and put it
#    in eval mode only after tracing. Run the traced graph on a batch of 1 and a batch of 2 of the same image:
#    why do the two answers for that image differ, and what would a user of such a file see?
# 3. **Several classes.** *Quick mode.* Export a U-Net with `out_channels=3`
#    (`UNet(out_channels=3, base_channels=4)`, untrained is fine) and check that the file's three channels sum
#    to 1 at every pixel. Why softmax here and not three sigmoids?
