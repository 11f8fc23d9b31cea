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
A folder of your own images, whose kind minunet cannot know: upright when its images hold no colour (radiographs
and slices are gray), whether read as gray or as RGB; any in colour; the synthetic lesions: any.
"""

# what an orientation allows: train_transforms' options (the dims a flip reverses: -1 left-right, -2 up-down), and
# the views TTA averages (() the image itself), and those views in words
ORIENTATIONS = {
    "any": dict(degrees=30, flips=((-1,), (-2,)), tta=((), (-1,), (-2,), (-2, -1)),
                views="the image and its three flips"),
    "upright": dict(degrees=15, flips=((-1,),), tta=((), (-1,)), views="the image and its left-right flip"),
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


def kind_of(name, colour):
    """What the images of dataset `name` are, in words: a named dataset's modality ("X-ray images"); for a
    folder or the synthetic lesions what minunet can tell: "colour images" where they hold colour (`colour`),
    else "gray images"; "synthetic lesions"."""
    if name in MODALITIES:
        return f"{MODALITIES[name]} images"
    if name == "synthetic":
        return "synthetic lesions"
    return "colour images" if colour else "gray images"


def orientation_of(name, colour):
    """"any" or "upright" (ORIENTATIONS) for the images of dataset `name`; `colour`: whether they hold colour
    (a folder's gray images, read as gray or as RGB, are upright)."""
    if name in MODALITIES:
        return "any" if MODALITIES[name] in ANY_WAY_UP else "upright"
    return "any" if name == "synthetic" or colour else "upright"
