"""Exported models give minunet's own probabilities in onnxruntime and torch.jit; every export has its model
card; torch.hub loads the models from this checkout; `minunet export`'s user errors are one line and exit 2."""
import importlib.util
import json
import os
import pathlib
import sys

import pytest
import torch

from minunet import ResNet34UNet, UNet, __version__
from minunet.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from minunet.cli import main
from minunet.cli.export import card_path, export_checkpoint
from minunet.cli.modelcard import model_card
from minunet.errors import CheckpointError
from minunet.transforms import IMAGENET_MEAN, IMAGENET_STD

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")  # torch >= 2.10; it still loads
OLD_CHECKPOINT = ROOT / "tests" / "fixtures" / "unet_v0.1.0.pt"
SIZES = [(2, 64, 64), (1, 96, 128)]  # (batch, height, width): the square the checkpoint says, and another shape
RUN = dict(model="unet", data="synthetic", data_root=None, size=64, epochs=3, batch_size=8, lr=1e-3,
           loss="bce_jaccard", ema=None, scale_shift=False, tta=True, tune_threshold=False, encoder_weights="none",
           base_channels=4, limit=16, seed=0, precision="fp32")


def random_statistics(model):
    """Give every BatchNorm running statistics and an affine map far from the identity, so that folding them
    into the convolutions changes the weights (a freshly built model's statistics are 0 and 1)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


def make_checkpoint(path, network, **run):
    save_checkpoint(str(path), random_statistics(network), size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    threshold=0.4, run=dict(RUN, **run), epoch=3, best_dice=0.5)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    return {"unet": make_checkpoint(folder / "unet.pt", UNet(base_channels=4)),
            "resunet34": make_checkpoint(folder / "resunet34.pt", ResNet34UNet(), model="resunet34"),
            "unet3": make_checkpoint(folder / "unet3.pt", UNet(out_channels=3, base_channels=4))}


def minunet_output(checkpoint, images, logits=False):
    """One forward pass of the checkpoint's model as minunet runs it: (B, K, H, W) logits or probabilities."""
    model = model_from_checkpoint(load_checkpoint(str(checkpoint)))
    with torch.no_grad():
        out = model(images)
    return out if logits else torch.sigmoid(out) if out.shape[1] == 1 else torch.softmax(out, dim=1)


def run_file(path, fmt, images):
    """The exported file's output for `images`, run by onnxruntime or torch.jit."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    return torch.jit.load(str(path))(images)


def images_of(batch, height, width, seed=2):
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


NAMES = ["unet", pytest.param("resunet34", marks=pytest.mark.slow)]  # the ResNet-34 U-Net's ONNX export: 15 s


def export(checkpoint, path, fmt, logits=False):
    """Export a checkpoint's model and its card as `minunet export` does; its largest difference from minunet."""
    state = load_checkpoint(str(checkpoint))
    return export_checkpoint(state, model_from_checkpoint(state), str(path), fmt, logits, str(checkpoint))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", NAMES)
def test_exported_model_gives_minunets_probabilities(checkpoints, tmp_path, name, fmt):
    out = tmp_path / f"{name}.{fmt}"
    assert export(checkpoints[name], out, fmt) < 1e-4
    for batch, height, width in SIZES:
        images = images_of(batch, height, width)
        expected, got = minunet_output(checkpoints[name], images), run_file(out, fmt, images)
        assert got.shape == (batch, 1, height, width)
        assert (got - expected).abs().max() < 1e-4
        assert 0 <= got.min() and got.max() <= 1  # probabilities, not logits
    card = pathlib.Path(card_path(str(out))).read_text()  # beside it: unet.onnx.md
    assert f"# Model card: minunet {name}" in card
    assert f"`{out.name}`: {'ONNX' if fmt == 'onnx' else 'TorchScript'}" in card


def test_batchnorm_is_folded_out_of_the_exported_graphs(checkpoints, tmp_path):
    import onnx

    for fmt in ("onnx", "torchscript"):
        export(checkpoints["unet"], tmp_path / f"m.{fmt}", fmt)
    model = onnx.load(str(tmp_path / "m.onnx"))
    ops = [node.op_type for node in model.graph.node]
    assert "Conv" in ops and "BatchNormalization" not in ops and "Sigmoid" in ops
    graph = str(torch.jit.load(str(tmp_path / "m.torchscript")).inlined_graph)
    assert "aten::_convolution" in graph and "batch_norm" not in graph
    # the ONNX file's dimensions are named, not fixed: batch, height and width are free
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    metadata = json.loads({p.key: p.value for p in model.metadata_props}["minunet"])
    assert metadata["mean"] == list(IMAGENET_MEAN) and metadata["size"] == [64, 64] and metadata["threshold"] == 0.4
    assert metadata["output"] == "probabilities" and metadata["activation"] == "sigmoid"
    assert metadata["classes"] == ["background", "lesion"] and metadata["model_args"]["base_channels"] == 4


def test_logits_are_exported_on_request(checkpoints, tmp_path):
    out = tmp_path / "logits.pt"
    export(checkpoints["unet"], out, "torchscript", logits=True)
    images = images_of(1, 96, 128)
    got = run_file(out, "torchscript", images)
    assert (got - minunet_output(checkpoints["unet"], images, logits=True)).abs().max() < 1e-4
    assert got.min() < 0 or got.max() > 1  # logits, not probabilities
    extra = {"minunet.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["minunet.json"])["output"] == "logits"
    assert "- output: (B, 1, H, W) logits" in pathlib.Path(card_path(str(out))).read_text()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_several_classes_export_softmax_probabilities(checkpoints, tmp_path, fmt):
    out = tmp_path / f"unet3.{fmt}"
    export(checkpoints["unet3"], out, fmt)
    for batch, height, width in SIZES:
        images = images_of(batch, height, width)
        got = run_file(out, fmt, images)
        assert got.shape == (batch, 3, height, width)
        assert (got - minunet_output(checkpoints["unet3"], images)).abs().max() < 1e-4
        assert torch.allclose(got.sum(dim=1), torch.ones(batch, height, width), atol=1e-5)
    card = pathlib.Path(card_path(str(out))).read_text()
    assert "softmax of the logits over the channels" in card and "0 background, 1 class 1, 2 class 2" in card
    # what ran: cross-entropy + Jaccard (the recipe's bce_jaccard for three classes), and no threshold at all
    assert "- loss: ce_jaccard" in card and "- threshold:" not in card and "tuned" not in card


def test_an_export_that_does_not_match_is_not_kept(checkpoints, tmp_path, monkeypatch):
    import minunet.cli.export

    real = minunet.cli.export.run_exported
    monkeypatch.setattr(minunet.cli.export, "run_exported", lambda *args: real(*args) + 1e-3)
    with pytest.raises(RuntimeError, match="differs from minunet's own output by 0.001"):
        export(checkpoints["unet"], tmp_path / "m.pt", "torchscript")
    assert os.listdir(tmp_path) == []  # neither the file nor its card, nor a temporary file


def test_the_card_says_what_the_model_is(checkpoints):
    state = load_checkpoint(str(checkpoints["unet"]))
    card = model_card(state, model_from_checkpoint(state), str(checkpoints["unet"]))
    model = UNet(base_channels=4)
    for text in ("# Model card: minunet unet", "base_channels=4", f"{sum(p.numel() for p in model.parameters()):,}",
                 "(B, 3, H, W)", "mean (0.485, 0.456, 0.406)", "std (0.229, 0.224, 0.225)", "64 x 64",
                 "0 background, 1 lesion", "loss: bce_jaccard", "augmentation in validation: the image and its three flips",
                 "threshold: 0.4", "data: synthetic", "at most 16", "best validation Dice: 0.5000 (epoch 3)",
                 f"minunet {__version__}", "must not be used for diagnosis"):
        assert text in card, text
    assert "not recorded" not in card.split("## Validation")[0]  # this checkpoint records its whole recipe


def test_the_card_of_a_0_1_0_checkpoint_says_what_it_does_not_record():
    state = load_checkpoint(str(OLD_CHECKPOINT))
    card = model_card(state, model_from_checkpoint(state), str(OLD_CHECKPOINT))
    assert card.startswith("# Model card: minunet unet") and "base_channels=1" in card
    for line in ("- loss: not recorded", "- threshold: not recorded", "validation: not recorded",
                 "best validation Dice: 0.5447 (epoch 3)", "data: synthetic", "at most 64"):
        assert line in card, line


# ---------------------------------------------------------------------------------------------------------
# torch.hub

def test_torch_hub_loads_both_models_from_this_checkout(checkpoints):
    unet = torch.hub.load(str(ROOT), "unet", source="local", base_channels=4)
    assert type(unet) is UNet and unet.config()["base_channels"] == 4
    resunet = torch.hub.load(str(ROOT), "resunet34", source="local", encoder_weights=None, out_channels=2)
    assert type(resunet) is ResNet34UNet and resunet.out_channels == 2
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert hubconf.dependencies == ["torch", "torchvision"]


def test_torch_hub_loads_a_checkpoints_weights_and_refuses_another_models(checkpoints):
    model = torch.hub.load(str(ROOT), "unet", source="local", checkpoint=str(checkpoints["unet"]))
    saved = load_checkpoint(str(checkpoints["unet"])).state_dict
    assert not model.training and all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="holds a unet model, not a resunet34"):
        torch.hub.load(str(ROOT), "resunet34", source="local", checkpoint=str(checkpoints["unet"]))
    with pytest.raises(ValueError, match="would not fit"):
        torch.hub.load(str(ROOT), "unet", source="local", checkpoint=str(checkpoints["unet"]), base_channels=8)


# ---------------------------------------------------------------------------------------------------------
# the command line: minunet export

def test_minunet_export_writes_the_model_and_its_card(checkpoints, tmp_path, capsys):
    for fmt, name in (("onnx", "unet.onnx"), ("torchscript", "unet.pt")):
        out = tmp_path / "exports" / name  # the folder is made
        assert main(["export", "--checkpoint", str(checkpoints["unet"]), "--format", fmt, "--output", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"wrote {out} ({fmt}" in printed and f"its model card {out}.md" in printed
        images = images_of(1, 96, 128)
        assert (run_file(out, fmt, images) - minunet_output(checkpoints["unet"], images)).abs().max() < 1e-4
    assert sorted(os.listdir(tmp_path / "exports")) == ["unet.onnx", "unet.onnx.md", "unet.pt", "unet.pt.md"]
    assert main(["export", "--checkpoint", str(checkpoints["unet"]), "--format", "torchscript", "--output",
                 str(tmp_path / "logits.pt"), "--logits"]) == 0
    images = images_of(1, 64, 64)
    got = run_file(tmp_path / "logits.pt", "torchscript", images)
    assert (got - minunet_output(checkpoints["unet"], images, logits=True)).abs().max() < 1e-4


def test_minunet_export_card_prints_or_writes_the_card_alone(checkpoints, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(OLD_CHECKPOINT), "--card"]) == 0  # a 0.1.0 checkpoint, to stdout
    card = capsys.readouterr().out
    assert card.startswith("# Model card: minunet unet") and "- loss: not recorded" in card
    (pathlib.Path(checkpoints["unet"]).parent / "history.csv").write_text(
        "epoch,lr,train_loss,val_loss,val_dice,val_jaccard\n1,0.001,0.9,0.8,0.4,0.3\n2,0.001,0.7,0.6,0.55,0.41\n")
    out = tmp_path / "cards" / "unet.md"
    assert main(["export", "--checkpoint", str(checkpoints["unet"]), "--card", "--output", str(out)]) == 0
    text = out.read_text()
    assert "epoch 2, train_loss 0.7000, val_loss 0.6000, val_dice 0.5500, val_jaccard 0.4100" in text
    assert "## Exported file" not in text and os.listdir(tmp_path / "cards") == ["unet.md"]
    out = tmp_path / "old.pt"  # and a 0.1.0 checkpoint exports
    assert main(["export", "--checkpoint", str(OLD_CHECKPOINT), "--format", "torchscript", "--output", str(out)]) == 0
    images = images_of(1, 32, 48)
    assert (run_file(out, "torchscript", images) - minunet_output(OLD_CHECKPOINT, images)).abs().max() < 1e-4


def test_user_errors_are_one_line_exit_2_and_replace_nothing(checkpoints, tmp_path, capsys):
    ckpt, bare = str(checkpoints["unet"]), tmp_path / "bare.pt"
    save_checkpoint(str(bare), UNet(base_channels=2), epoch=1)  # no size or normalisation: cannot be exported
    taken = tmp_path / "taken.pt"
    taken.write_text("a user's file")
    (tmp_path / "card_taken.pt.md").write_text("a user's notes")
    export = ["--checkpoint", ckpt, "--format", "torchscript", "--output"]
    cases = [
        (["--checkpoint", str(tmp_path / "missing.pt"), "--format", "torchscript", "--output", str(tmp_path / "a.pt")],
         "does not exist"),
        (["--checkpoint", str(bare), "--format", "torchscript", "--output", str(tmp_path / "a.pt")],
         "lacks size, mean, std"),
        (export + [str(tmp_path)], "is a folder"),
        (export + [str(taken)], "already exists"),
        (export + [str(tmp_path / "card_taken.pt")], "card_taken.pt.md already exists"),
        (export + [str(taken / "x.pt")], "is a file, not a folder"),
        (["--checkpoint", ckpt, "--format", "torchscript"], "needs --output"),
        (["--checkpoint", ckpt, "--card", "--logits"], "--logits"),
        (["--checkpoint", ckpt, "--card", "--format", "onnx"], "not allowed with"),
        (["--checkpoint", ckpt], "one of the arguments --format --card is required"),
        (["--checkpoint", ckpt, "--format", "tflite", "--output", "m"], "invalid choice"),
    ]
    for argv, words in cases:
        try:
            code = main(["export", *argv])
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
        err = capsys.readouterr().err
        assert code == 2, argv
        assert words in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert taken.read_text() == "a user's file" and (tmp_path / "card_taken.pt.md").read_text() == "a user's notes"
    assert sorted(os.listdir(tmp_path)) == ["bare.pt", "card_taken.pt.md", "taken.pt"]  # nothing written
    assert main(["export", *export, str(taken), "--overwrite"]) == 0  # --overwrite replaces the file and its card
    assert taken.read_bytes()[:2] == b"PK" and (tmp_path / "taken.pt.md").is_file()  # a TorchScript zip


def test_onnx_without_its_packages_says_what_to_install(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(checkpoints["unet"]), "--format", "onnx", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "minunet[export]"' in err and "onnxscript" in err, err
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------
# the benchmark (tests/test_bench.py skips without segmentation_models_pytorch, which this one does not need)

@pytest.mark.slow
def test_export_speed_runs_in_tiny_mode():
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "export_speed.py"), "--tiny"], capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for line in ("flags:", f"torch {torch.__version__}", "onnxruntime 1.", "export_speed.py --tiny",
                 "load average before", "batch 1 ", "batch 2 ", "predict's copy", "TorchScript", "stolen"):
        assert line in out, line
    assert out.count(" img/s") == 8 and out.count(" x") >= 6  # four runtimes, two batches, each ratio printed


@pytest.mark.slow
def test_a_gray_three_class_run_of_minunet_train_exports_its_own_probabilities(tmp_path, capsys):
    from minunet.cli import main
    from minunet.inference import Inference

    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", "--classes", "3", "--channels", "1", "--limit", "8", "--size", "32",
                 "--epochs", "1", "--batch-size", "4", "--base-channels", "4", "--device", "cpu", "--out",
                 str(out)]) == 0
    state = load_checkpoint(str(out / "best.pt"))
    model = model_from_checkpoint(state)
    assert main(["export", "--checkpoint", str(out / "best.pt"), "--format", "onnx", "--output",
                 str(tmp_path / "m.onnx")]) == 0
    x = torch.randn(2, 1, 40, 48)  # normalised gray images of another size than trained at
    expected = Inference.of_checkpoint(state, tta=False).probabilities(model, x)  # minunet's one path
    got = run_file(tmp_path / "m.onnx", "onnx", x)
    assert got.shape == (2, 3, 40, 48) and (got - expected).abs().max() < 1e-4
    card = (tmp_path / "m.onnx.md").read_text()
    assert all(name in card for name in state.classes), state.classes


def test_torch_hub_names_an_unknown_argument_and_takes_none_as_the_command_line_spells_it(checkpoints):
    # issue 34, case 21: a name that is no argument was "would not fit its weights"; "none" was a file name
    with pytest.raises(TypeError, match=r"foo: not an argument of unet \(its arguments: .*base_channels"):
        torch.hub.load(str(ROOT), "unet", source="local", checkpoint=str(checkpoints["unet"]), foo=1)
    model = torch.hub.load(str(ROOT), "resunet34", source="local", encoder_weights="none")
    assert type(model) is ResNet34UNet


# ---------------------------------------------------------------------------------------------------------
# issue 34: export never loses a file, never touches a user's own, and fails before the work or names the file

def exit_code_and_line(argv, capsys):
    """(exit code, the one line on stderr) of `minunet ARGV`."""
    code = main(argv)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return code, err.strip()


def test_export_never_writes_over_its_own_checkpoint(checkpoints, tmp_path, capsys):
    # case 4: --output (or --card --output) equal to --checkpoint replaced the checkpoint with --overwrite
    checkpoint, alias = tmp_path / "ck.pt", tmp_path / "alias.pt"
    checkpoint.write_bytes(pathlib.Path(checkpoints["unet"]).read_bytes())
    alias.symlink_to(checkpoint)  # the same file under another name
    before = checkpoint.read_bytes()
    for output, what in ((checkpoint, ["--format", "torchscript"]), (checkpoint, ["--card"]),
                         (alias, ["--format", "onnx"]), (tmp_path / "." / "ck.pt", ["--card"])):
        for overwrite in ([], ["--overwrite"]):
            argv = ["export", "--checkpoint", str(checkpoint), *what, "--output", str(output), *overwrite]
            code, line = exit_code_and_line(argv, capsys)
            assert code == 2 and f"--output {output} is the checkpoint itself" in line, (argv, line)
            assert "--overwrite" not in line, line  # no advice that would replace it
    ck = ["--checkpoint", str(checkpoint)]
    code, line = exit_code_and_line(["evaluate", *ck, "--json", str(alias), "--overwrite"], capsys)
    assert code == 2 and "--json" in line and "is the checkpoint itself" in line
    assert checkpoint.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["alias.pt", "ck.pt"]


def test_a_users_tmp_files_beside_the_output_are_never_touched(checkpoints, tmp_path, capsys):
    # case 5: u.onnx.tmp and u.onnx.md.tmp were the export's own temporary names: overwritten, then deleted
    mine = {tmp_path / f"u.{fmt}{card}.tmp": f"the user's {fmt}{card}" for fmt in ("onnx", "pt") for card in ("", ".md")}
    for path, text in mine.items():
        path.write_text(text)
    for fmt, name in (("onnx", "u.onnx"), ("torchscript", "u.pt")):
        assert main(["export", "--checkpoint", str(checkpoints["unet"]), "--format", fmt, "--output",
                     str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert all(path.read_text() == text for path, text in mine.items())
    assert sorted(os.listdir(tmp_path)) == sorted(["u.onnx", "u.onnx.md", "u.pt", "u.pt.md", *(p.name for p in mine)])


def test_an_output_naming_a_missing_folder_is_refused_before_any_work(checkpoints, tmp_path, capsys, monkeypatch):
    # case 16: --output exports/ (no such folder) failed with "exports/.tmp: No such file or directory" after the work
    import minunet.cli.export

    def no_work(*args, **kwargs):
        raise AssertionError("the export ran before its output was checked")
    monkeypatch.setattr(minunet.cli.export, "exported", no_work)
    folder = str(tmp_path / "exports") + os.sep
    code, line = exit_code_and_line(["export", "--checkpoint", str(checkpoints["unet"]), "--format", "onnx",
                                     "--output", folder], capsys)
    assert code == 2 and line == (f"minunet export: error: --output {folder} names a folder: pass a file name, such "
                                  f"as {folder}unet.onnx")
    code, line = exit_code_and_line(["evaluate", "--checkpoint", str(checkpoints["unet"]), "--json", folder], capsys)
    assert code == 2 and f"--json {folder} names a folder" in line  # evaluate's --json alike, before evaluating
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt,name,failing", [("torchscript", "m.pt", "m.pt"), ("onnx", "m.onnx", "m.onnx"),
                                              ("onnx", "m.onnx", "m.onnx.md")])
def test_a_full_disk_under_export_names_the_file_and_leaves_nothing(checkpoints, tmp_path, capsys, full_disk,
                                                                     fmt, name, failing):
    # cases 3 and 17: TorchScript onto a full disk ended in a C++ terminate (exit 134) leaving a 2 MiB .tmp; ONNX
    # said "[Errno 28] No space left on device" naming no file. The file and its card are written together.
    (tmp_path / f"{name}.md").write_text("the card of an earlier export")
    full_disk(lambda path, data: path.endswith(failing))
    code, line = exit_code_and_line(["export", "--checkpoint", str(checkpoints["unet"]), "--format", fmt,
                                     "--output", str(tmp_path / name), "--overwrite"], capsys)
    assert code == 2 and line == f"minunet export: error: {tmp_path / failing}: No space left on device"
    assert os.listdir(tmp_path) == [f"{name}.md"] and (tmp_path / f"{name}.md").read_text().startswith("the card")


def test_an_exported_model_passed_as_a_checkpoint_says_what_it_is(checkpoints, tmp_path, capsys):
    # case 18: "truncated, or not written by torch.save? copy it again"
    for fmt, name, kind in (("onnx", "m.onnx", "ONNX"), ("torchscript", "m.pt", "TorchScript"),
                            ("onnx", "renamed.pt", "ONNX")):
        out = tmp_path / ("m.onnx" if name == "renamed.pt" else name)
        if not out.exists():
            export(checkpoints["unet"], out, fmt)
        if name == "renamed.pt":
            out = tmp_path / name
            out.write_bytes((tmp_path / "m.onnx").read_bytes())  # told by its bytes, not its name
        for argv in (["evaluate", "--checkpoint", str(out), "--data", "synthetic", "--limit", "4"],
                     ["predict", "--checkpoint", str(out), "--input", str(ROOT / "docs" / "samples"), "--output",
                      str(tmp_path / "p")],
                     ["export", "--checkpoint", str(out), "--card"],
                     ["train", "--resume", str(out)]):
            code, line = exit_code_and_line(argv, capsys)
            assert code == 2 and f"{out} is an exported {kind} model, not a checkpoint" in line, (argv, line)
    assert not (tmp_path / "p").exists()
    with pytest.raises(CheckpointError, match="is an exported TorchScript model"):  # and from Python, torch.hub
        torch.hub.load(str(ROOT), "unet", source="local", checkpoint=str(tmp_path / "m.pt"))
