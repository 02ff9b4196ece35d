"""Command-line plumbing shared by every entry point: flags made from a config dataclass.

Each CLI keeps its configuration in a dataclass; `add_config_flags` turns its fields into
`--kebab-case` flags with help text, `config_from_args` builds the dataclass back, and
`Parser` reports bad input as one line instead of a usage dump or a traceback.
"""

import argparse
from dataclasses import MISSING, fields


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def field_default(f):
    return f.default_factory() if f.default_factory is not MISSING else f.default


def add_config_flags(parser: argparse.ArgumentParser, config_cls, help_text: dict[str, str],
                     skip: set[str] = frozenset()) -> None:
    """One flag per dataclass field (but those in `skip`); its type comes from the default value."""
    for f in fields(config_cls):
        if f.name in skip:
            continue
        default = field_default(f)
        flag = "--" + f.name.replace("_", "-")
        text = help_text.get(f.name, "") + " (default: %(default)s)"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif isinstance(default, list):
            element = type(default[0]) if default else str
            parser.add_argument(flag, nargs="*", type=element, default=default, metavar="X", help=text)
        elif default is None:
            parser.add_argument(flag, default=None, help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text)


def config_from_args(config_cls, args: argparse.Namespace):
    """The dataclass from the parsed flags; fields without a flag keep their defaults."""
    return config_cls(**{f.name: getattr(args, f.name) for f in fields(config_cls) if hasattr(args, f.name)})
