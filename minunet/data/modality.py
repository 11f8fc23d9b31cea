"""Which way up a dataset's images are: the one place that decides, from what the images show, which flips and
turns keep them true. Training augments with those, and test-time augmentation averages the same flips.

A skin lesion, a cell or a retina has no up or down: flipped or turned, it is still a plausible image (ANY).
A chest X-ray, an ultrasound or a CT or MR slice has an up (the clavicles at the top, the probe at the top of an
ultrasound): upside down it is an image the model will never meet, so such images are flipped left-right only
and turned a little (UPRIGHT). nnU-Net decides its mirroring from each dataset's fingerprint; here the kind of
images decides, and a recipe may say otherwise (minunet.recipe.Recipe.orientation).

    orientation   flips (training and TTA)            rotation      data
    any           left-right and up-down (TTA: 3)    up to 30 deg  dermoscopy, microscopy, fundus, endoscopy
    upright       left-right only (TTA: 1)           up to 15 deg  X-ray, ultrasound, CT, MR, OCT
A folder of your own images, whose kind minunet cannot know: upright when read as gray (radiographs and
slices are gray), any in colour; the synthetic lesions: any.
"""

# what an orientation allows: train_transforms' options (the dims a flip reverses: -1 left-right, -2 up-down), and
# the views TTA averages (() the image itself)
ORIENTATIONS = {
    "any": dict(degrees=30, flips=((-1,), (-2,)), tta=((), (-1,), (-2,), (-2, -1))),
    "upright": dict(degrees=15, flips=((-1,),), tta=((), (-1,))),
}
ANY_WAY_UP = ("dermoscopy", "microscopy", "fundus", "endoscopy")  # no up or down in what they show

MODALITIES = {  # the kind of images of each named dataset (MedSegBench's, after its paper; the ISIC challenges)
    "isic2016": "dermoscopy", "isic2017": "dermoscopy", "isic2018": "dermoscopy", "uwaterlooskincancer": "dermoscopy",
    "kvasir": "endoscopy", "polypgen": "endoscopy", "bkai-igh": "endoscopy", "robotool": "endoscopy",
    "m2caiseg": "endoscopy",
    "drive": "fundus", "chasedb1": "fundus", "idrib": "fundus",
    "wbc": "microscopy", "cellnuclei": "microscopy", "bbbc010": "microscopy", "dynamicnuclear": "microscopy",
    "nuset": "microscopy", "nuclei": "microscopy", "tnbcnuclei": "microscopy", "monusac": "microscopy",
    "deepbacs": "microscopy", "brifiseg": "microscopy", "yeaz": "microscopy",
    "dca1": "X-ray", "chuac": "X-ray", "pandental": "X-ray", "covid19radio": "X-ray", "covidquex": "X-ray",
    "busi": "ultrasound", "ultrasoundnerve": "ultrasound", "usforkidney": "ultrasound", "abdomenus": "ultrasound",
    "fhpsaop": "ultrasound",
    "promise12": "MR", "mosmedplus": "CT", "cystoidfluid": "OCT",
}


def kind_of(name, channels):
    """What the images of dataset `name` are, in words: a named dataset's modality; for a folder or the
    synthetic lesions, what minunet can tell ("gray images", "colour images", "synthetic lesions")."""
    if name in MODALITIES:
        return MODALITIES[name]
    if name == "synthetic":
        return "synthetic lesions"
    return "gray images" if channels == 1 else "colour images"


def orientation_of(name, channels):
    """"any" or "upright" (ORIENTATIONS) for the images of dataset `name` read with `channels` channels."""
    kind = kind_of(name, channels)
    return "any" if kind in ANY_WAY_UP + ("colour images", "synthetic lesions") else "upright"
