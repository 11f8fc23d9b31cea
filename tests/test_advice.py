"""The core speaks of its own arguments; the command line words its advice as flags (issue 33, point 2): each
line names only a flag the command in hand has, whose type takes the value, and that the data leave to the
user."""
from minunet.cli.advice import error_line
from minunet.cli.parser import build_parser
from minunet.errors import Fix, SettingError


def test_advice_names_only_the_flags_of_the_command_and_of_a_run_resumed():
    parser = build_parser()
    err = SettingError("no", fix=[Fix(batch_size=2), Fix(root="DIR"), Fix(device="cpu"), Fix(classes=[2, 256])])
    for argv, line in ((["train"], "no: pass --batch-size 2, or --data-root DIR, or --device cpu, or --classes 2"),
                       (["train", "--resume", "r/last.pt"], "no: pass --data-root DIR, or --device cpu"),
                       (["evaluate", "--checkpoint", "c.pt"], "no: pass --batch-size 2, or --data-root DIR, or "
                                                              "--device cpu"),
                       (["predict", "--checkpoint", "c.pt", "--input", "i", "--output", "o"],
                        "no: pass --batch-size 2, or --device cpu")):
        args = parser.parse_args(argv)
        assert error_line(err, parser.commands[args.command], args) == line
    assert str(err) == "no: pass batch_size=2, or root=DIR, or device=cpu, or classes=2 or 256"
