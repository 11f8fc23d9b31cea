"""The shell: the `minunet` command (train, evaluate, predict, export) built on the teaching core.

  entry      the console script and `python -m minunet`: ctrl-C at any moment is one line and exit 130
  parser     the flags of each command, and main: a user error is one line on stderr and exit 2
  commands   what train, evaluate and predict do once their flags are parsed
  flags      train's recipe flags: one per field of minunet.recipe.Recipe
  argtypes   the types of numeric and size flags
  rundir     the files of a training run (best.pt, last.pt, history.csv, curves.png) and --resume
  paths      checks on where a command will write, made before any work
  predict    segmenting image files into mask files
  report     per_image.csv and the HTML failure report (htmlparts: its pieces)
  export     ONNX and TorchScript files, with modelcard beside them
The core (everything outside this package) never imports it.
"""

__all__ = ["main"]


def main(argv=None):
    """Run `minunet ARGV...` in this process; return the exit code (0, 2 for a user error, 130 if stopped)."""
    from .parser import main as run  # here: importing minunet.cli must not import torch (see entry)

    return run(argv)
