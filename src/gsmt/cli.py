"""gsmt: temporal action localization with Global Segmentation Mask Transformers."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import re
import signal
import sys
import threading

from gsmt._version import __version__
from gsmt.commands import COMMANDS
from gsmt.commands.common import one_line
from gsmt.errors import GsmtError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line, `gsmt: error: --opt: problem (see
    gsmt CMD --help)`, exit code 2, like every other error of gsmt (no usage block)."""

    def error(self, message: str):
        message = re.sub(r"^argument ([^:]+?): ", lambda m: m.group(1).split("/")[-1] + ": ", message)
        self.exit(2, one_line(f"gsmt: error: {message} (see {self.prog} --help)") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gsmt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gsmt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"gsmt.commands.{name}")
        p = sub.add_parser(name, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def _show_warnings() -> logging.Handler:
    """Counted data faults and other library warnings as `gsmt: warning: ...` lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("gsmt: warning: %(message)s"))
    logging.getLogger("gsmt").addHandler(handler)
    return handler


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that its cleanup runs as for Ctrl-C: atomic writes
    remove their temporaries, a command records the outputs it wrote (`gsmt.io.owned`). Not
    `shared`: under torchrun a terminated rank leaves its group without waiting for the others."""


def _terminate(signum, frame):
    raise Terminated()


def _on_sigterm():
    """Install the SIGTERM handler for this call (main thread only); returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _terminate)
    except (ValueError, OSError):
        return None


_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _show_warnings()
    previous = _on_sigterm()
    try:
        return int(args.func(args) or 0)
    except GsmtError as exc:
        print(one_line(f"gsmt: error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        # A full disk (or quota, or a read-only or failing one) wherever gsmt did not catch it itself:
        # still one line. Any other OSError is a bug, shown with its traceback.
        if exc.errno not in _DISK_ERRORS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(one_line(f"gsmt: error: {where}cannot write: {exc.strerror or exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gsmt: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("gsmt: terminated", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        # main() may run many times in one process (tests, notebooks): no handler piles up.
        logging.getLogger("gsmt").removeHandler(handler)


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun process leaves without the interpreter's teardown: gloo's threads, destroyed with
        # the C++ statics at exit, can abort a process whose work is done ("terminate called without an
        # active exception", seen in CI). Every output is written and closed by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
