"""The training recipe: every choice that decides what a run learns, declared once.

`Recipe()` holds the defaults. `fit()` runs them when given no recipe, and the command line (minunet.cli)
makes one flag per field with the field's default and description, so the library and the command cannot
drift apart. A checkpoint stores the recipe it was trained with (its "run" dict), and `Recipe.of_run` reads it
back. The defaults were chosen by paired cross-validation on the ISIC images at hand (bench/RESULTS.md): BCE +
Jaccard and flip TTA paid; EMA, zoom and shift, and a tuned threshold did not, so they stay off.

To add a training option: one field here (and its flag's type in minunet.cli.flags.RECIPE_FLAGS), then its use.
"""
import dataclasses
from dataclasses import dataclass, field, fields

SCALE_SHIFT = dict(scale=0.2, shift=0.1)  # scale_shift: zoom by x0.8 to x1.2, shift by up to 10 %


def option(default, about, was=dataclasses.MISSING):
    """A recipe field: its default; `about`, what it does (the flag's help); and `was`, the value of runs
    recorded before the field existed (for resuming them), if it differs from the default."""
    return field(default=default, metadata=dict(about=about, was=default if was is dataclasses.MISSING else was))


@dataclass(frozen=True)
class Recipe:
    """What a training run does, with the cross-validated defaults (see the module docstring)."""
    model: str = option("unet", "the model (a name in minunet.models.MODELS)")
    base_channels: int = option(16, "unet's width (16: as accurate as 32 in cross-validation, in under half the "
                                "time)")
    encoder_weights: str = option("imagenet", "resunet34's encoder: torchvision's ImageNet weights (downloaded "
                                  "once), none (random: from scratch), or the path of resnet34-b627a593.pth")
    size: object = option(128, "images are resized to size x size, or H x W, such as (192, 256)")
    epochs: int = option(20, "epochs to train")
    batch_size: int = option(16, "global batch size")
    lr: float = option(1e-3, "peak learning rate of Adam")
    loss: str = option("bce_jaccard", "the training loss (bce_jaccard: BCE + soft Jaccard)", was="bce_dice")
    ema: object = option(None, "validate and keep an exponential moving average of the weights, e.g. 0.99")
    orientation: str = option("auto", "which way up the images are: any (flipped left-right and up-down, "
                              "rotated up to 30 degrees, TTA over the three flips), upright (flipped left-right "
                              "only, rotated up to 15 degrees, TTA over that flip), or auto: the data's "
                              "(minunet.data.modality: X-ray, ultrasound, CT, MR and a folder of gray images "
                              "upright; the others any)", was="any")
    scale_shift: bool = option(False, "also zoom (x0.8 to x1.2) and shift (up to 10 %) images and masks when "
                               "augmenting")
    tta: bool = option(True, "validate (and, in evaluate and predict, predict) with the average over the image "
                       "and its flips (three; the left-right one alone for upright images); off: one pass",
                       was=False)
    tune_threshold: bool = option(False, "keep with the best epoch the threshold with the best validation Dice "
                                  "(else 0.5)")
    seed: int = option(0, "seeds the initial weights, the order of the images and every augmentation")

    @classmethod
    def of_run(cls, run):
        """The recipe a checkpoint's "run" dict records; fields it lacks (older runs) take their `was` value."""
        return cls(**{f.name: run.get(f.name, f.metadata["was"]) for f in fields(cls)})

    def for_data(self, dataset):
        """This recipe, its orientation "auto" made the dataset's (LesionDataset.orientation; "any" where it
        has none)."""
        if self.orientation != "auto":
            return self
        return dataclasses.replace(self, orientation=getattr(dataset, "orientation", "any"))

    def augmentation(self):
        """make_dataset's `augment` for the training split: True (rotation, flips, colour jitter as the data's
        orientation allows), or the options that set the recipe's orientation where it is not "auto", and with
        scale_shift add zoom and shift (SCALE_SHIFT)."""
        options = dict(SCALE_SHIFT) if self.scale_shift else {}
        if self.orientation != "auto":
            options["orientation"] = self.orientation
        return options or True
