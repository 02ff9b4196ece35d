"""Configuration fields that carry their own help text and limits, and one check for all of them.

Every configuration in the project (model, training, LoRA, sampling, the experiments) is a
dataclass whose fields are made with `option(...)`: the default, the help text the command
line shows, the limits a value must meet, and the value under `--quick` where it has one.
`check(config)` runs in each dataclass's `__post_init__`, so a bad value is refused when the
config is built, before any work, with a `ConfigError` that names the field; `minisub.cli`
turns that into one line naming the flag.
"""

import math
from dataclasses import MISSING, field, fields

import torch


class ConfigError(ValueError):
    """A configuration value out of its limits; `field` names it, the message says why."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name} {message}")
        self.field, self.reason = field_name, message


def option(default, help: str, *, low=None, high=None, above=None, choices=None, nonempty: bool = False,
           device: bool = False, quick=None):
    """A dataclass field with help text and limits (list defaults are copied per instance).

    low, high: the smallest and largest allowed values (for a list: of each element); floats must also be finite.
    above: a bound the value must exceed (for a step size that 0 would make meaningless).
    choices: the allowed values (for a list: of each element). nonempty: a list needs an element.
    device: the value names a torch device that must exist on this machine.
    quick: the value under `--quick`, a tiny budget that checks a pipeline connects (None: the default).
    """
    metadata = {"help": help, "low": low, "high": high, "above": above, "choices": choices, "nonempty": nonempty,
                "device": device, "quick": quick}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def field_default(f):
    return f.default_factory() if f.default_factory is not MISSING else f.default


def quick_values(*config_classes) -> dict:
    """{field: value under --quick} for every field of these dataclasses that has one."""
    return {f.name: f.metadata["quick"] for cls in config_classes for f in fields(cls)
            if f.metadata.get("quick") is not None}


def check_value(name: str, value, meta: dict) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, not {value}")
    if meta.get("low") is not None and value is not None and value < meta["low"]:
        raise ConfigError(name, f"must be at least {meta['low']}, not {value}")
    if meta.get("high") is not None and value is not None and value > meta["high"]:
        raise ConfigError(name, f"must be at most {meta['high']}, not {value}")
    if meta.get("above") is not None and value is not None and value <= meta["above"]:
        raise ConfigError(name, f"must be above {meta['above']}, not {value}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(name, f"must be one of {', '.join(map(str, meta['choices']))}, not {value!r}")


def check_device(name: str, device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ConfigError(name, f"{device!r} is not a torch device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(name, f"{device!r} asks for CUDA, which this machine does not have")
    if kind not in ("cpu", "cuda"):
        raise ConfigError(name, f"{device!r}: only cpu and cuda are supported")


def check(config) -> None:
    """Check every field made with `option` against its limits; raise ConfigError on the first miss."""
    for f in fields(config):
        meta, value = f.metadata, getattr(config, f.name)
        if "help" not in meta:
            continue
        if isinstance(value, list):
            if meta["nonempty"] and not value:
                raise ConfigError(f.name, "needs at least one value")
            for item in value:
                check_value(f.name, item, meta)
        else:
            check_value(f.name, value, meta)
        if meta["device"]:
            check_device(f.name, value)
