"""The settings of the pseudo-label rules: their flags, their checks.

A stage's settings are one frozen dataclass with the paper's values as
defaults (:class:`~.pom.PomRules` for stage 3, :class:`~.nsrm.NsrmRules` for
stage 6; docs/method.md, stages 3 and 6). Each field is a command-line flag of
the stage's script, ``--`` + the field name with dashes, a ``--x/--no-x`` pair
for a boolean; the pipeline turns a preset's dataclass back into those flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import TypeVar

from nsrom.errors import ConfigError

Rules = TypeVar("Rules")


def rule_flag(name: str) -> str:
    """The flag of a rule setting: ``--`` + the field name with dashes (``min_foreground`` -> ``--min-foreground``)."""
    return "--" + name.replace("_", "-")


def rule_error(name: str, message: str) -> ConfigError:
    """A :class:`ConfigError` naming a rule setting by its field and its flag."""
    return ConfigError(f"{name} ({rule_flag(name)}) {message}")


def check_fraction(name: str, value: float) -> None:
    """:class:`ConfigError` unless the setting ``name`` is a number in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise rule_error(name, f"must be between 0 and 1, got {value}")


RULE_TYPES = (bool, int, float, str)
"""The types a rule setting may have (one flag value each)."""


def add_rule_args(p: argparse.ArgumentParser, rules_cls: type, title: str) -> None:
    """One flag per field of the frozen dataclass ``rules_cls`` (:class:`~.pom.PomRules`,
    :class:`~.nsrm.NsrmRules`), default the field's (the paper's), help from its metadata;
    a boolean field is a ``--name/--no-name`` pair, a field with ``choices`` in its metadata takes only those.
    A field of another type than :data:`RULE_TYPES` is a TypeError naming it."""
    group = p.add_argument_group(title)
    hints = typing.get_type_hints(rules_cls)
    for f in dataclasses.fields(rules_cls):
        kind = hints[f.name]
        if kind not in RULE_TYPES:
            raise TypeError(f"{rules_cls.__name__}.{f.name} is of type {kind}; a rule setting is a "
                            f"{', '.join(t.__name__ for t in RULE_TYPES)}")
        help_text = f.metadata.get("help", "") + " (default: %(default)s)"
        if kind is bool:
            group.add_argument(rule_flag(f.name), action=argparse.BooleanOptionalAction, default=f.default,
                               help=help_text)
        else:
            choices = f.metadata.get("choices")  # e.g. the names a str setting takes
            group.add_argument(rule_flag(f.name), type=kind, default=f.default, choices=choices,
                               metavar=None if choices else kind.__name__.upper(), help=help_text)


def rules_from_args(args: argparse.Namespace, rules_cls: type[Rules]) -> Rules:
    """The ``rules_cls`` instance the flags of :func:`add_rule_args` describe
    (a value out of range: :class:`~nsrom.errors.ConfigError` naming the flag)."""
    return rules_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(rules_cls)})


def rules_to_argv(rules) -> list[str]:
    """The flags that make :func:`rules_from_args` give ``rules`` back (the pipeline passes these)."""
    argv: list[str] = []
    for f in dataclasses.fields(rules):
        value = getattr(rules, f.name)
        if isinstance(value, bool):
            argv.append(rule_flag(f.name) if value else "--no-" + rule_flag(f.name)[2:])
        else:
            argv += [rule_flag(f.name), str(value)]
    return argv
