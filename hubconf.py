"""torch.hub entry points: minunet's two models, new or with a minunet checkpoint's weights.

    model = torch.hub.load("path/to/minunet", "unet", source="local", base_channels=16)
    model = torch.hub.load("path/to/minunet", "resunet34", source="local", encoder_weights="imagenet")
    model = torch.hub.load("path/to/minunet", "unet", source="local", checkpoint="runs/unet-isic2016/best.pt")

Keyword arguments go to the model's constructor (minunet.UNet, minunet.ResNet34UNet). With checkpoint=PATH
the architecture is the checkpoint's (any keyword given must agree with it) and the weights are its own: the
model comes back in eval mode; a checkpoint of the other model is refused. Models return logits: apply
torch.sigmoid for probabilities (torch.softmax over the channels for a model of K > 2 classes), and normalise
images as the checkpoint's mean and std say
(minunet.checkpoint.load_checkpoint(PATH).mean, .std).
"""
dependencies = ["torch", "torchvision"]


def _hub_model(name, checkpoint, kwargs):
    """A new model `name` built with kwargs, or the model of a minunet checkpoint with its weights."""
    from minunet.checkpoint import load_checkpoint, model_from_checkpoint
    from minunet.errors import CheckpointError
    from minunet.models import build_model

    if kwargs.get("encoder_weights") == "none":  # as the command line spells "no pretrained weights"
        kwargs = dict(kwargs, encoder_weights=None)
    if checkpoint is None:
        return build_model(name, **kwargs)
    saved = load_checkpoint(checkpoint)
    if saved.model != name:
        raise CheckpointError(f"{checkpoint} holds a {saved.model} model, not a {name}: load it with "
                              f"torch.hub.load(..., {saved.model!r}, checkpoint=...)")
    if "encoder_weights" in kwargs:
        raise ValueError("encoder_weights with checkpoint: the checkpoint holds all the weights; leave one out")
    unknown = sorted(k for k in kwargs if k not in saved.model_args)
    if unknown:
        raise TypeError(f"{', '.join(unknown)}: not an argument of {name} (its arguments: "
                        f"{', '.join(saved.model_args)})")
    differing = {k: v for k, v in kwargs.items() if saved.model_args[k] != v}
    if differing:
        raise ValueError(f"{checkpoint} was trained with {saved.model_args}; {differing} would not fit its "
                         f"weights: leave them out")
    return model_from_checkpoint(saved)


def unet(checkpoint=None, **kwargs):
    """minunet.UNet(in_channels=3, out_channels=1, base_channels=64, bilinear=False), returning logits;
    checkpoint=PATH: the U-Net of a minunet checkpoint (best.pt, last.pt) with its weights, in eval mode."""
    return _hub_model("unet", checkpoint, kwargs)


def resunet34(checkpoint=None, **kwargs):
    """minunet.ResNet34UNet(out_channels=1, encoder_weights=None): encoder_weights "imagenet" loads
    torchvision's ImageNet ResNet-34 (downloaded once) or a path to its state dict; checkpoint=PATH: the
    ResNet-34 U-Net of a minunet checkpoint with its weights, in eval mode."""
    return _hub_model("resunet34", checkpoint, kwargs)
