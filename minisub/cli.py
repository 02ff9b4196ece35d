"""Command-line plumbing shared by every entry point: flags made from a config dataclass.

Each CLI keeps its configuration in a dataclass whose fields carry their help text
(`minisub.config.option`); `add_config_flags` turns the fields into `--kebab-case` flags,
`config_from_args` builds the dataclass back and reports a `ConfigError` as one line naming
the flag, and `Parser` reports every other bad flag as one line too, never a usage dump or a
traceback. `run_main` is the one error-exit path of every entry point: what goes wrong with
an input after the flags are parsed ends as one line too.
"""

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import fields

from minisub.config import ConfigError, field_default, quick_values
from minisub.files import FileError


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, config_cls, skip: set[str] = frozenset()) -> None:
    """One flag per dataclass field (but those in `skip`); its type comes from the default value."""
    for f in fields(config_cls):
        if f.name in skip:
            continue
        default = field_default(f)
        text = f.metadata.get("help", "") + " (default: %(default)s)"
        if isinstance(default, bool):
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=default, help=text)
        elif isinstance(default, list):
            element = type(default[0]) if default else str
            parser.add_argument(flag(f.name), nargs="*", type=element, default=default, metavar="X", help=text)
        elif default is None:  # the only optional fields are integers (e.g. top_k)
            parser.add_argument(flag(f.name), type=int, default=None, help=text)
        else:
            parser.add_argument(flag(f.name), type=type(default), default=default, help=text)


def describe(err: Exception) -> str:
    """An error as one line for the command line: a ConfigError names the flag, not the field."""
    return f"{flag(err.field)} {err.reason}" if isinstance(err, ConfigError) else str(err)


def run_main(prog: str, body: Callable[[], int | None], interrupted: str = "") -> int:
    """An entry point's body on the one error-exit path they all share: its exit code (None: 0); a bad input (a
    ValueError, FileError or OSError from anywhere inside) one line `prog: error: ...` on stderr and exit 2, never
    a traceback; Ctrl-C one line (`interrupted` says what is kept) and exit 130."""
    try:
        return body() or 0
    except (ValueError, FileError, OSError) as err:
        if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, one line from rank 0, not one per process
            print(f"{prog}: error: {describe(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted" + (f"; {interrupted}" if interrupted else ""), file=sys.stderr)
        return 130


def config_from_args(config_cls, args: argparse.Namespace, parser: Parser):
    """The dataclass from the parsed flags (fields without a flag keep their defaults).

    A value out of its limits exits with one line that names the flag, before any work.
    """
    values = {f.name: getattr(args, f.name) for f in fields(config_cls) if hasattr(args, f.name)}
    try:
        return config_cls(**values)
    except ConfigError as err:
        parser.error(describe(err))


def add_quick_flag(parser: argparse.ArgumentParser, argv, *config_classes, what: str) -> bool:
    """Add `--quick` (the fields' `quick` values as defaults; flags typed explicitly still win) and
    say whether `argv` asks for it. Call it after every other flag has been added."""
    parser.add_argument("--quick", action="store_true", help=f"{what}; flags given explicitly still apply")
    quick = parser.parse_known_args(argv)[0].quick
    if quick:
        parser.set_defaults(**quick_values(*config_classes))
    return quick
