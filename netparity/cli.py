"""`netparity` command line: a thin dispatcher; each subcommand lives in its own module
exposing ``add_arguments(parser)`` and ``run(args) -> exit code``."""
import argparse
import importlib
import sys

SUBCOMMANDS = {
    "train": ("netparity.cmd_train", "train a network on a built-in data set"),
    "verify": ("netparity.cmd_verify", "check your own PyTorch or flax/optax model against the reference, stage by stage"),
    "check": ("netparity.cmd_check", "run a slice of the conformance matrix and print per-stage errors"),
    "report": ("netparity.cmd_report", "write a self-contained HTML/Markdown equivalence report"),
    "bench": ("netparity.cmd_bench", "run the benchmarks and render tables and plots"),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="netparity", description=__doc__.splitlines()[0])
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
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())
