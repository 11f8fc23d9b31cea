"""An exponential moving average (EMA) of a model's weights: a smoother model to validate and keep."""
import copy

import torch


class EMA:
    """An exponential moving average of the weights of `model`, updated after each optimiser step.

    `ema.module` is a deep copy of the model (of the model inside, for one wrapped in
    DistributedDataParallel), in eval mode, with requires_grad False. Each `ema.update(model)` moves its
    float parameters and float buffers (BatchNorm's running mean and variance) towards the model's:

        avg = d * avg + (1 - d) * current,    d = min(decay, (1 + n) / (10 + n))

    where n is the number of updates so far. The second term is a warm-up: d starts at 0.1 and climbs to
    `decay` (0.999 after about 9000 updates), so early on the average follows the model closely and a short
    run's average is not dominated by the random weights it started from. Integer buffers (BatchNorm's
    num_batches_tracked) are copied. The model may sit on another device, or in another memory format
    (channels_last), than the average. `state_dict()` / `load_state_dict()` save and restore the average
    and n, so a resumed run continues exactly.
    """

    def __init__(self, model, decay=0.999):
        self.decay = decay
        self.updates = 0  # n, the number of updates so far
        self.module = copy.deepcopy(getattr(model, "module", model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self):
        """d of the next update: min(decay, (1 + n) / (10 + n))."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model):
        """Move the average one step towards `model`'s current weights (the model is left untouched)."""
        d = self.current_decay()
        current = getattr(model, "module", model).state_dict()
        for name, avg in self.module.state_dict().items():  # the average's own tensors, not copies
            value = current[name].to(device=avg.device, dtype=avg.dtype)
            if avg.is_floating_point():
                avg.mul_(d).add_(value, alpha=1 - d)
            else:
                avg.copy_(value)
        self.updates += 1

    def state_dict(self):
        """The averaged weights and the number of updates, for a checkpoint (loads with weights_only=True)."""
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state):
        """Restore what `state_dict()` returned."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
