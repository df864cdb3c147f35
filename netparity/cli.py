"""`netparity` command line: a thin dispatcher; each subcommand lives in its own module
exposing ``add_arguments(parser)`` and ``run(args) -> exit code``.

No traceback reaches a user (docs/errors.md): bad input is one line on stderr and exit
code 2 (argparse's errors and ``cli_checks.UsageError``, raised before any work);
Ctrl-C is one line and 130; an OS error (a disk that fills up while a result is
written) is one line and 1; anything else is a bug, reported in one line with exit code
70 (``NETPARITY_DEBUG=1`` re-raises it with its traceback).
"""
import argparse
import importlib
import os
import sys

from netparity.cli_checks import UsageError

SUBCOMMANDS = {
    "train": ("netparity.cmd_train", "train a network on a built-in data set"),
    "verify": ("netparity.cmd_verify", "check your own PyTorch or flax/optax model against the reference, stage by stage"),
    "check": ("netparity.cmd_check", "run a slice of the conformance matrix and print per-stage errors"),
    "report": ("netparity.cmd_report", "write a self-contained HTML/Markdown equivalence report"),
    "bench": ("netparity.cmd_bench", "run the benchmarks and render tables and plots"),
}
EXIT_USAGE, EXIT_INTERRUPTED, EXIT_INTERNAL = 2, 130, 70


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, except where there is nothing to show: no default
    (None), an on/off flag, or a help text that already says what the default is."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or \
                isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction)):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block) and exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = Parser(prog="netparity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # subcommand not built yet
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        if p.formatter_class is argparse.ArgumentDefaultsHelpFormatter:
            p.formatter_class = HelpFormatter  # no "(default: None)", no default said twice
        p.set_defaults(_run=mod.run)
    return parser


def _actions(parser):
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)


def explicit_options(argv):
    """The dests of the options typed on the command line (defaults not included): the
    same parser with every default suppressed leaves only those in the namespace."""
    parser = build_parser()
    for action in _actions(parser):
        if not isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)):
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command", "_run"}


def _one_line(e):
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = "netparity"
    try:
        args = build_parser().parse_args(argv)
        prog = f"netparity {args.command}"
        args._explicit = explicit_options(argv)
        return args._run(args)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`netparity check | head`): nothing to report, and
        # stdout must not be flushed again at exit (the recipe of Python's signal docs)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # stdout is not a file (captured): nothing to protect
        return 1
    except OSError as e:
        if os.environ.get("NETPARITY_DEBUG"):
            raise
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"{prog}: error: {e.strerror or _one_line(e)}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: one line, the traceback on request
        if os.environ.get("NETPARITY_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(e).__name__}: {_one_line(e)} "
              "(run with NETPARITY_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
