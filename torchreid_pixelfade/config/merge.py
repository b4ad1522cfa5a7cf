"""Merging at the edge: YAML files and ``KEY VALUE`` overrides into a yacs config, with errors
that name the key; torchreid's ``scripts/main.py`` arguments; ``k=v,...`` option strings.

The flow is torchreid's: defaults -> ``--config-file`` -> ``--root/-s/-t/--transforms`` ->
trailing ``KEY VALUE`` overrides -> frozen, then small adapters turn the config into plain
keyword dictionaries. Library classes never see a config object.
"""
from __future__ import annotations

import argparse
import ast
import os
from typing import Any, Sequence

from yacs.config import CfgNode as CN


def _coerce(default: Any, value: Any) -> Any:
    """Accepts an int where the default is a float (``beta 1`` means 1.0) and a number where the
    default is a string (``cache_dir 2024``); yacs would refuse both."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str) and isinstance(value, (int, float)) and \
            not isinstance(value, bool):
        return str(value)
    return value


def parse_value(raw: Any) -> Any:
    """A command-line string as a Python literal where it is one (``'0.5'`` -> 0.5)."""
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def parse_overrides(text: str) -> dict[str, Any]:
    """``"eps=0.05,target='zeros'"`` -> ``{'eps': 0.05, 'target': 'zeros'}`` (report rows and
    sweep variants share this syntax).

    Raises:
        ValueError: for an item without ``=``.

    Example:
        >>> parse_overrides("eps=0.05,target='zeros'")
        {'eps': 0.05, 'target': 'zeros'}
    """
    options = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"Expected key=value, got {item!r} in {text!r}")
        options[key.strip()] = parse_value(value.strip())
    return options


def _node_and_leaf(cfg: CN, key: str) -> tuple[CN | None, str]:
    node = cfg
    for part in key.split(".")[:-1]:
        node = node.get(part) if isinstance(node, CN) else None
    return node, key.split(".")[-1]


#: int keys that also take the string ``'auto'``
AUTO_KEYS = ("pixelfade.batch_size",)


def _checked(default: Any, value: Any, key: str) -> Any:
    """``value`` if it may replace ``default``: the same type, anything where the default is
    None (an optional setting), a list for a tuple, or an int or ``'auto'`` for
    :data:`AUTO_KEYS`."""
    if key in AUTO_KEYS and (value == "auto" or type(value) is int):
        return value
    if key not in AUTO_KEYS and (default is None or type(value) is type(default)):
        return value
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    expected = "int or 'auto'" if key in AUTO_KEYS else type(default).__name__
    raise ValueError(f"Type mismatch for config key {key}: expected {expected} "
                     f"(like {default!r}), got {type(value).__name__} {value!r}")


def merge_opts(cfg: CN, opts: Sequence[Any]) -> None:
    """``merge_from_list`` with the int-for-float coercion and key-naming errors; values are
    parsed once (``'0.5'`` -> 0.5) and never re-read as literals afterwards.

    Raises:
        KeyError: for an unknown key (named in the message).
        ValueError: for a value of the wrong type (key, expected and given types named).
    """
    if len(opts) % 2:
        raise ValueError(f"Overrides must be KEY VALUE pairs, got an odd number: {list(opts)}")
    for key, raw in zip(opts[0::2], opts[1::2]):
        node, leaf = _node_and_leaf(cfg, key)
        if not isinstance(node, CN) or leaf not in node or isinstance(node[leaf], CN):
            raise KeyError(f"Unknown config key: {key}")
        if cfg.is_frozen():
            raise AttributeError(f"Cannot set {key}: the config is frozen")
        value = parse_value(raw)
        if key not in AUTO_KEYS:
            value = _coerce(node[leaf], value)
        node[leaf] = _checked(node[leaf], value, key)


def _coerce_tree(default: CN, loaded: CN, prefix: str = "") -> list[tuple[CN, str, Any]]:
    """Coerces ``loaded`` against ``default`` in place; returns the :data:`AUTO_KEYS` values
    taken out of it as ``(node, leaf, value)``, to be set after yacs' own merge (which refuses
    a str for an int)."""
    autos = []
    for key, value in list(loaded.items()):
        name = prefix + key
        if key not in default:
            raise KeyError(f"Unknown config key: {name}")
        if isinstance(value, CN):
            autos += _coerce_tree(default[key], value, name + ".")
        elif name in AUTO_KEYS:
            autos.append((default, key, _checked(default[key], loaded.pop(key), name)))
        else:
            loaded[key] = _coerce(default[key], value)
    return autos


def merge_file(cfg: CN, path: str) -> None:
    """``merge_from_file`` that names the offending key for unknown keys and wrong types.

    Raises:
        ValueError: for a file that is not YAML (yacs would execute a ``.py`` config).
        FileNotFoundError: for a missing file.
    """
    if not str(path).lower().endswith((".yaml", ".yml")):
        raise ValueError(f"{path}: config files must be YAML (.yaml or .yml)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: config file not found")
    with open(path) as handle:
        loaded = cfg.load_cfg(handle)
    autos = _coerce_tree(cfg, loaded)
    cfg.merge_from_other_cfg(loaded)
    for node, leaf, value in autos:
        node[leaf] = value


def add_torchreid_arguments(parser: argparse.ArgumentParser) -> None:
    """torchreid's ``scripts/main.py`` arguments: --config-file, -s, -t, --transforms, --root, opts."""
    parser.add_argument("--config-file", type=str, default="", help="path to a yaml config")
    parser.add_argument("-s", "--sources", type=str, nargs="+", help="source datasets")
    parser.add_argument("-t", "--targets", type=str, nargs="+", help="target datasets")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation")
    parser.add_argument("--root", type=str, default="", help="path to the data root")
    parser.add_argument("opts", default=None, nargs="*", metavar="KEY VALUE",
                        help="config overrides, e.g. pixelfade.eps 0.05; after a list option "
                             "(--rows, --splits, -s, -t, --transforms) write '--' first, and put "
                             "every option before that '--'")


def merge_args(cfg: CN, args: argparse.Namespace) -> CN:
    """``--config-file`` -> ``--root/-s/-t/--transforms`` -> ``KEY VALUE`` opts into ``cfg``;
    returns it frozen."""
    if args.config_file:
        merge_file(cfg, args.config_file)
    for name, key in (("root", "root"), ("sources", "sources"), ("targets", "targets"),
                      ("transforms", "transforms")):
        if getattr(args, name):
            cfg.data[key] = getattr(args, name)
    opts = list(args.opts or [])
    if opts[:1] == ["--"]:  # `--transforms a b -- KEY VALUE` ends the list with --
        opts = opts[1:]
    if opts:
        merge_opts(cfg, opts)
    cfg.freeze()
    return cfg
