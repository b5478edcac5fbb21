"""A reader for the YAML subset the shipped configs are written in, for machines without
PyYAML (a GPU image with only torch and numpy runs ``jobs/benchmarks/gpu_check.py``).

Supported: ``#`` comments, nested block mappings by indentation, one-line flow mappings
``{a: 1, b: x}``, and scalars (ints, floats, ``true``/``false``, ``null``/``~``, quoted or bare
strings). Anything else raises ``ValueError`` naming the line. ``tests/test_config.py`` checks
that every shipped config reads the same here as with PyYAML.
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def scalar(text: str) -> Any:
    """One YAML 1.1 scalar as PyYAML's safe loader reads the forms the configs use."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "~", ""):
        return None
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t) and ("." in t or "e" in low):
        return float(t)
    return t


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"":
            quote = None if quote == ch else (ch if quote is None else quote)
        elif ch == "#" and quote is None and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _flow_mapping(text: str, where: str) -> dict[str, Any]:
    inner = text.strip()[1:-1].strip()
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in _split_top(inner))):
        if ":" not in part:
            raise ValueError(f"{where}: flow mapping entry {part!r} has no ':'")
        key, value = part.split(":", 1)
        out[key.strip()] = _value(value, where)
    return out


def _split_top(text: str) -> list[str]:
    """Split on commas outside quotes and braces."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if ch in "'\"":
            quote = None if quote == ch else (ch if quote is None else quote)
        elif quote is None and ch in "{[":
            depth += 1
        elif quote is None and ch in "}]":
            depth -= 1
        elif ch == "," and depth == 0 and quote is None:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _value(text: str, where: str) -> Any:
    t = text.strip()
    if t.startswith("{") and t.endswith("}"):
        return _flow_mapping(t, where)
    if t.startswith(("[", "|", ">", "&", "*", "!")):
        raise ValueError(f"{where}: {t[:1]!r} values are outside the supported YAML subset")
    return scalar(t)


def loads(text: str, name: str = "<config>") -> dict[str, Any]:
    """Parse ``text`` into nested dicts."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(0, root)]  # (indent of a block's keys, block)
    pending: str | None = None  # a key whose block value starts on the next line
    flow: tuple[str, str, str] | None = None  # (key, text so far, where) of an open {...}
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line.strip():
            continue
        where = f"{name}:{n}"
        if flow is not None:  # a flow mapping continued over several lines
            key, buf, start = flow
            buf += " " + line.strip()
            flow = (key, buf, start) if buf.count("{") > buf.count("}") else None
            if flow is None:
                stack[-1][1][key] = _value(buf, start)
            continue
        indent = len(line) - len(line.lstrip(" "))
        if "\t" in line[:indent]:
            raise ValueError(f"{where}: tabs in indentation")
        if pending is not None:
            if indent > stack[-1][0]:
                child: dict[str, Any] = {}
                stack[-1][1][pending] = child
                stack.append((indent, child))
            else:
                stack[-1][1][pending] = None
            pending = None
        while indent < stack[-1][0]:
            stack.pop()
        body = line.strip()
        if indent != stack[-1][0]:
            raise ValueError(f"{where}: inconsistent indentation")
        if body.startswith("- ") or ":" not in body:
            raise ValueError(f"{where}: expected 'key: value' (lists and documents are outside "
                             f"the supported YAML subset)")
        key, value = body.split(":", 1)
        key = key.strip().strip("'\"")
        if value.strip().startswith("{") and value.count("{") > value.count("}"):
            flow = (key, value.strip(), where)
        elif value.strip():
            stack[-1][1][key] = _value(value, where)
        else:
            pending = key
    if flow is not None:
        raise ValueError(f"{flow[2]}: a flow mapping is not closed")
    if pending is not None:
        stack[-1][1][pending] = None
    return root
