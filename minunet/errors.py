"""The four kinds of user error, what would fix one, and the one way their messages are flattened into one line.

  DataError        the user's data: a missing folder, an unreadable image, a mask of the wrong size, ...
  CheckpointError  a checkpoint or encoder-weights file that cannot be used, or cannot be written
  SettingError     a setting that cannot work here: no CUDA GPU, a batch larger than the data
  TrainingError    a run that cannot go on: a non-finite loss, a folder that already holds another run

Each speaks of the arguments of the function that raised it, never of a command line:

    raise DataError("isic2018 comes at 128, 256 or 512 px, not 32", fix=[Fix(size=[128, 256, 512])])

`str(err)` words the fixes as a Python caller passes them ("...: pass size=128, 256 or 512"); the command line
(minunet.cli.advice) words them as its flags, keeping only those the command has and accepts.
"""


class Fix:
    """One way out of an error: values of the raising function's arguments that work together (a list: any one
    of its values; None: leave the argument out), and a note said after them ("or more", "holding the file")."""

    def __init__(self, note="", **args):
        self.args, self.note = args, note


def python_words(name, value):
    """An argument as a Python caller passes it: ('size', '128') for size=128; ('classes', None) to leave it out."""
    return name, None if value is None else str(value)


def no_arguments(name, value):
    """For `UserError.line` where no argument can be changed (a note on a file left out): no fix is said."""
    return None


class UserError(Exception):
    """An error of the user's data or settings. message: what is wrong; otherwise: what to do that no argument
    changes (e.g. "save the lesion as 255"); fix: a Fix or a list of them, the arguments that would work."""

    def __init__(self, message, fix=(), otherwise=""):
        super().__init__(message)
        self.message, self.otherwise = message, otherwise
        self.fix = [fix] if isinstance(fix, Fix) else list(fix)

    def __str__(self):
        return self.line()

    def line(self, words=python_words, sep="="):
        """The message and what to do, in one sentence. words(name, value): (how the caller names the argument,
        the value's text or None to leave it out), or None where the caller cannot pass that value; a fix with
        such an argument is left out. sep joins a name and its value ("size=128"; the command line: " ")."""
        ways, passing = [self.otherwise] if self.otherwise else [], False
        for way in filter(None, (fix_words(fix, words, sep) for fix in self.fix)):
            ways.append(way[len("pass "):] if passing and way.startswith("pass ") else way)  # pass a, or b
            passing = way.startswith("pass ")
        return self.message + (": " + ", or ".join(ways) if ways else "")


def fix_words(fix, words, sep):
    """One Fix as words: "pass size=128 or 256", "leave classes out", "pass root=DIR holding it"; "" when an
    argument of it cannot be passed by the caller (words gives None for every value of it)."""
    passed, left = [], []
    for name, value in fix.args.items():
        spelled = [words(name, v) for v in (value if isinstance(value, list) else [value])]
        spelled = [s for s in spelled if s is not None]
        if not spelled:
            return ""
        if spelled[0][1] is None:
            left.append(spelled[0][0])
            continue
        values = [text for _, text in spelled]
        shown = values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
        passed.append(f"{spelled[0][0]}{sep}{shown}")
    passed = " ".join(passed) if sep == " " else " and ".join(passed)  # as typed on a command line, or in words
    parts = ([f"pass {passed}"] if passed else []) + ([f"leave {' and '.join(left)} out"] if left else [])
    return " and ".join(parts) + (f" {fix.note}" if fix.note else "")


class DataError(UserError):
    """A problem with the user's data (a missing folder or file, a broken image, ...), in one line."""


class CheckpointError(UserError):
    """A checkpoint that cannot be used (missing, truncated, unsafe, or not minunet's), in one line."""


class SettingError(UserError, ValueError):
    """A setting that cannot work here (a device that is not present, a batch larger than the data), in one
    line."""


class TrainingError(UserError):
    """Training cannot go on (for example, the loss is no longer a finite number), in one line."""


def one_line(err, limit=None):
    """The text of `err` (an exception or a string) on one line, white space folded, cut at `limit` chars."""
    text = " ".join(str(err).split())
    return text if limit is None else text[:limit]


def out_of_memory(err):
    """Whether `err` is the allocator running out of memory (CPU or GPU)."""
    import torch  # here, not at the top: the error types above need no torch

    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or (isinstance(err, RuntimeError) and any(
        text in str(err) for text in ("can't allocate memory", "not enough memory", "out of memory")))
