"""Tutorial 06 asks the learner to write the loop of one epoch from its five parts; the answer's filled-in
function (tutorials/answers/06_train_unet.md) must train exactly as minunet.training.loop.train_one_epoch does: the same
loss at every batch and the same weights afterwards, to the bit."""
import copy
import pathlib
import re

import pytest
import torch

from minunet import UNet
from minunet.data import make_dataset
from minunet.losses import BCEJaccardLoss
from minunet.training.loop import train_one_epoch

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (see conftest.py)
ANSWER = pathlib.Path(__file__).resolve().parent.parent / "tutorials" / "answers" / "06_train_unet.md"


def answer_loop():
    """The my_train_one_epoch the answer file defines."""
    code = next(block for block in re.findall(r"```python\n(.*?)```", ANSWER.read_text(), re.S)
                if block.startswith("def my_train_one_epoch("))
    namespace = {}
    exec(code.split("\n\n\n")[0], namespace)  # the function alone, not the tutorial's check after it
    return namespace["my_train_one_epoch"]


def train_both(loop, seed=0):
    """(the loss of each batch under `loop`, under train_one_epoch, whether the weights end equal)."""
    items = make_dataset("synthetic", "train", size=32, augment=True, limit=12)
    batches = [(torch.stack([items[i][0] for i in range(k, k + 4)]).contiguous(memory_format=torch.channels_last),
                torch.stack([items[i][1] for i in range(k, k + 4)])) for k in (0, 4, 8)]
    torch.manual_seed(seed)
    ours = UNet(base_channels=4)
    library = copy.deepcopy(ours)
    losses = {"ours": [], "library": []}

    def recording(into):
        def loss_fn(logits, masks):
            loss = BCEJaccardLoss()(logits, masks)
            losses[into].append(loss.item())
            return loss
        return loss_fn

    loop(ours, batches, recording("ours"), torch.optim.Adam(ours.parameters(), lr=1e-3))
    train_one_epoch(library, batches, recording("library"), torch.optim.Adam(library.parameters(), lr=1e-3))
    same = all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), library.state_dict().values()))
    return losses["ours"], losses["library"], same


def test_the_answers_loop_trains_exactly_as_train_one_epoch():
    ours, library, same_weights = train_both(answer_loop())
    assert len(ours) == 3 and ours == library and same_weights, (ours, library)


def test_the_check_catches_a_loop_without_zero_grad():
    def forgetful(model, batches, loss_fn, optimizer):
        model.train()
        for images, masks in batches:
            loss_fn(model(images), masks).backward()
            optimizer.step()

    ours, library, same_weights = train_both(forgetful)
    assert ours[:2] == library[:2] and ours[2] != library[2] and not same_weights
