"""One module per `gsmt` command: `HELP`, `add_arguments(parser)`, `run(args) -> int`.

Each `run` parses nothing and calls a keyword function (of its own module or of the library);
modules import torch and the heavy parts inside their functions, so `gsmt --help` and
`gsmt eval` start without them. `gsmt.cli.build_parser` imports `gsmt.commands.<name>` for each
name of `COMMANDS`, in this (`gsmt --help`) order.
"""

COMMANDS = ("demo", "synth", "train", "predict", "eval", "analyze", "visualize", "extract", "detect")
