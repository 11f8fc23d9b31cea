"""Taking a trained model elsewhere: `minunet export` to ONNX or TorchScript, each with its model card.

The exported model takes float images (B, C, H, W) normalised as the checkpoint says (its mean and std;
trained at its size) and returns probabilities: the sigmoid of the logits for one output channel, the softmax
over the channels for several (or the logits themselves with --logits). BatchNorm is folded into the
convolutions first (minunet.inference.fold_batchnorm); batch, height and width stay free (any H, W >= 32).
The file is made in memory and run (onnxruntime, torch.jit) at two sizes, its output compared with minunet's own,
before anything is written; then the file and its card (FILE + ".md") are written together (minunet.atomic),
replacing nothing the user did not ask to, and never the checkpoint itself.
"""
import argparse
import copy
import io
import json
import os
import warnings

import torch
import torch.nn as nn

from .. import __version__
from ..atomic import write_atomically, write_together
from ..checkpoint import load_checkpoint, model_from_checkpoint
from ..errors import CheckpointError, SettingError
from ..inference import Inference, fold_batchnorm
from .modelcard import model_card
from .paths import must_be_a_file_name, must_not_be_the_checkpoint

FORMATS = ("onnx", "torchscript")
INSTALL_EXPORT = 'pip install "minunet[export]"'
TOLERANCE = 1e-4  # the largest difference from minunet's own probabilities an export may show


class ExportModel(nn.Module):
    """A segmentation model whose output is probabilities: sigmoid for one output channel, softmax over the
    channels for several; or, with logits=True, the model's logits unchanged."""

    def __init__(self, model, logits=False):
        super().__init__()
        self.model = model
        self.activation = "none" if logits else "sigmoid" if model.out_channels == 1 else "softmax"

    def forward(self, images):  # (B, C, H, W), normalised
        logits = self.model(images)  # (B, K, H, W)
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)  # (B, 1, H, W): P(lesion)
        if self.activation == "softmax":
            return torch.softmax(logits, dim=1)  # (B, K, H, W): each pixel's probabilities sum to 1
        return logits


def onnx_runtime():
    """onnxruntime, after checking that the exporter's packages are there; SettingError saying what to install."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes with these two)
        import onnxscript  # noqa: F401
        import onnxruntime
    except ImportError as err:
        raise SettingError(f"exporting to ONNX needs onnx, onnxscript and onnxruntime ({err.name} is not "
                           f"installed): {INSTALL_EXPORT}") from None
    return onnxruntime


def onnx_file(module, example, metadata):
    """The bytes of an ONNX file of `module` with free batch, height and width, `metadata` in its properties."""
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=32),
            3: torch.export.Dim("width", min=32)}
    with warnings.catch_warnings():  # the exporter's notes would add lines to stderr
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False, input_names=["images"],
                                    output_names=[metadata["output"]], dynamic_shapes={"images": dims})
    program.model.metadata_props["minunet"] = json.dumps(metadata)
    program.model.doc_string = f"minunet {metadata.get('model', 'model')}: {metadata['output']} of normalised images"
    return program.model_proto.SerializeToString()  # what program.save writes, for models under 2 GiB


def torchscript_file(module, example, metadata):
    """The bytes of a TorchScript file of `module`, traced; `metadata` rides along as the extra file minunet.json."""
    buffer = io.BytesIO()  # in memory: torch.jit.save onto a full disk ends the process (C++ terminate)
    with warnings.catch_warnings():  # torch >= 2.10 calls TorchScript deprecated; torch.jit.load still reads it
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)  # sizes are traced: H and W stay free
        torch.jit.save(traced, buffer, _extra_files={"minunet.json": json.dumps(metadata)})
    return buffer.getvalue()


def run_exported(file, fmt, images):
    """The output of an exported file (its path, or its bytes) for `images` (B, C, H, W): onnxruntime's or
    torch.jit's, as a tensor."""
    if fmt == "onnx":
        session = onnx_runtime().InferenceSession(file, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(io.BytesIO(file) if isinstance(file, bytes) else file)(images)


@torch.no_grad()
def exported(model, fmt, size=(128, 128), logits=False, metadata=None):
    """(the bytes of `model` (eval mode) exported in `fmt` ("onnx" or "torchscript"), BatchNorm folded, returning
    probabilities (logits=True: logits); the largest difference between its output and the model's own).

    size: (H, W) traced at, and checked at with a batch of 2 and at (H + 16, W + 48) with one image. RuntimeError
    when the difference is over TOLERANCE. Nothing is written.
    """
    h, w = size
    channels = model.config().get("in_channels", 3)
    wrapped = ExportModel(fold_batchnorm(copy.deepcopy(model).eval()), logits).eval()
    reference = ExportModel(model.eval(), logits).eval()  # the unfolded model: minunet's own output
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, channels, h, w, generator=generator)  # (2, C, H, W)
    metadata = dict(metadata or {}, output="logits" if logits else "probabilities",
                    activation=wrapped.activation, minunet_version=__version__)
    file = (onnx_file if fmt == "onnx" else torchscript_file)(wrapped, example, metadata)
    worst = 0.0
    for images in (example, torch.randn(1, channels, h + 16, w + 48, generator=generator)):
        expected, got = reference(images), run_exported(file, fmt, images)
        worst = max(worst, (expected - got).abs().max().item() if got.shape == expected.shape else float("inf"))
    if not worst <= TOLERANCE:
        raise RuntimeError(f"the {fmt} export differs from minunet's own output by {worst:.2g} "
                           f"(more than {TOLERANCE:g}): nothing written; please report this")
    return file, worst


def export_model(model, path, fmt, size=(128, 128), logits=False, metadata=None):
    """Export `model` (eval mode) to the file `path` in `fmt` ("onnx" or "torchscript"), BatchNorm folded,
    returning probabilities (logits=True: logits); the file is written only once it has passed its check
    (`exported`). Returns the largest difference between the file's output and minunet's own."""
    file, worst = exported(model, fmt, size, logits, metadata)
    write_atomically(path, file)
    return worst


def export_checkpoint(checkpoint, model, path, fmt, logits=False, checkpoint_path=None):
    """Export a Checkpoint's model to `path` and write its model card beside it (card_path(path)), replacing both
    together, once the file has passed its check; returns the largest difference from minunet's own output.

    The checkpoint's size is traced at, and its size, normalisation, threshold, classes and orientation (which
    flips its TTA averaged: minunet.data.modality) go into the file's metadata.
    """
    missing = checkpoint.lacking("size", "mean", "std")
    if missing:
        raise CheckpointError(f"{checkpoint_path or 'the checkpoint'} lacks {', '.join(missing)}: an export needs "
                              f"the size and normalisation a run of minunet train stores; use its best.pt or last.pt")
    metadata = dict(model=checkpoint.model, model_args=checkpoint.model_args, size=list(checkpoint.size),
                    mean=list(checkpoint.mean), std=list(checkpoint.std), threshold=checkpoint.threshold,
                    classes=list(checkpoint.classes), orientation=checkpoint.recipe.orientation)
    if metadata["threshold"] is None and len(checkpoint.classes) == 2:
        metadata["threshold"] = Inference.threshold  # what minunet uses for a checkpoint that records none
    file, worst = exported(model, fmt, checkpoint.size, logits, metadata)
    (h, w), channels = checkpoint.size, model.config().get("in_channels", 3)
    details = (f"input `images` (B, {channels}, H, W), output `{'logits' if logits else 'probabilities'}`; batch, "
               f"height and width are free (H, W >= 32); BatchNorm folded; its output matched minunet's to "
               f"{worst:.1g} at {h} x {w} and {h + 16} x {w + 48}")
    card = model_card(checkpoint, model, checkpoint_path, dict(format=fmt, path=path, logits=logits, details=details))
    write_together({path: file, card_path(path): card})
    return worst


# ---------------------------------------------------------------------------------------------------------
# the command line

def add_export_parser(subparsers, parser_class=argparse.ArgumentParser):
    """Add `minunet export` and its flags to the CLI's subparsers; its flags are built in a parser_class
    (the CLI's, whose errors are one line), then given to the export parser as its parent."""
    flags = parser_class(add_help=False)
    flags.add_argument("--checkpoint", required=True, metavar="CKPT", help="a best.pt or last.pt of minunet train")
    what = flags.add_mutually_exclusive_group(required=True)
    what.add_argument("--format", choices=FORMATS, help="the model as an ONNX file or TorchScript; its card "
                                                        "is written beside it, as FILE.md")
    what.add_argument("--card", action="store_true",
                      help="write the model card alone (to --output, or printed when there is none)")
    flags.add_argument("--output", metavar="FILE", help="the file to write, e.g. unet.onnx or unet.pt")
    flags.add_argument("--logits", action="store_true", help="return the logits instead of probabilities")
    flags.add_argument("--overwrite", action="store_true", help="replace --output and its card if they exist")
    subparsers.add_parser("export", parents=[flags], help="export a checkpoint to ONNX or TorchScript, with a "
                          "model card", description="Write a checkpoint's model as ONNX or TorchScript (BatchNorm "
                          "folded; probabilities of normalised images) and its model card (FILE.md).")


def card_path(path):
    """Where the card of an exported file goes: beside it, its name + ".md" (unet.onnx -> unet.onnx.md), so
    the ONNX and TorchScript exports of one checkpoint each keep their own."""
    return path + ".md"


def export_command(args):
    """`minunet export`: the model as --format to --output with its card, or (--card) the card alone."""
    if args.format and not args.output:
        raise SettingError(f"--format {args.format} needs --output FILE, the file to write (e.g. unet.onnx)")
    if args.card and args.logits:
        raise SettingError("--logits shapes an exported model: leave it out with --card, or export with --format")
    outputs = {} if not args.output else {args.output: "--output"}
    if args.format and args.output:
        outputs[card_path(args.output)] = "its model card"
    for path, flag in outputs.items():
        must_not_be_the_checkpoint(path, flag, args.checkpoint)
        must_be_a_file_name(path, flag, "unet.onnx" if flag == "--output" else "unet.onnx.md", args.overwrite)
    if args.format == "onnx":
        onnx_runtime()  # before the checkpoint: a missing package is said first
    checkpoint = load_checkpoint(args.checkpoint)
    try:
        model = model_from_checkpoint(checkpoint)
    except CheckpointError as err:
        raise CheckpointError(f"{args.checkpoint}: {err}") from None
    if args.card:
        card = model_card(checkpoint, model, args.checkpoint)
        if not args.output:
            print(card, end="")
            return
        write_atomically(args.output, card)
        print(f"wrote the model card {args.output}")
        return
    worst = export_checkpoint(checkpoint, model, args.output, args.format, args.logits, args.checkpoint)
    print(f"wrote {args.output} ({args.format}, {os.path.getsize(args.output) / 2 ** 20:.1f} MiB, "
          f"{'logits' if args.logits else 'probabilities'}; matches minunet's own to {worst:.1g}) and its model "
          f"card {card_path(args.output)}")
