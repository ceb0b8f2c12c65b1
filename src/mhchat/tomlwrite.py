"""A small TOML writer for the configurations mhchat writes itself (the demo, test services).

Python's standard library reads TOML but does not write it; these documents hold only plain
values, lists, nested tables and arrays of tables, so a few lines do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], Mapping)


def to_toml(doc: Mapping[str, Any], prefix: str = "") -> str:
    """``doc`` as TOML: plain values first, then each table and array of tables."""
    lines = [
        f"{key} = {toml_value(value)}"
        for key, value in doc.items()
        if not isinstance(value, Mapping) and not _is_table_array(value)
    ]
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            lines += [f"\n[{name}]", to_toml(value, f"{name}.")]
        elif _is_table_array(value):
            for item in value:
                lines += [f"\n[[{name}]]", to_toml(item, f"{name}.")]
    return "\n".join(line for line in lines if line)
