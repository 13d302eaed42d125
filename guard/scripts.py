"""How the Lua scripts are assembled, and how a script error names its file and line.

A lease script as registered is four parts, in this order (docs/protocol.md "Script
assembly"; every SDK assembles them the same way):

1. one line of constants, ``local DEFAULT_TTL_MS, … = 900000, …`` (`CONSTANTS`);
2. ``struct_compat.lua``;
3. ``common.lua``;
4. the script itself (``acquire_lease.lua``, …).

``write_config.lua`` gets only its own constants line. Redis reports a runtime error at the
line of the assembled source (``user_script:241: …``), some 220 lines below the line in the
file; `Source.where` maps it back (``acquire_lease.lua:19: …``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from . import keys, wire

LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")
LEASE_SCRIPTS = ("acquire_lease", "release_lease", "renew_lease", "read_usage")

# The constants every lease script sees, in this order, on its first line.
CONSTANTS: dict[str, int | str] = {
    "DEFAULT_TTL_MS": int(keys.DEFAULT_LEASE_TTL * 1000),
    "BACKSTOP_MS": int(keys.BACKSTOP_TTL * 1000),
    "IDLE_MS": int(keys.IDLE_CLEANUP * 1000),
    "MAX_NAMED": keys.MAX_UNCONFIGURED_NAMES,
    "MAX_PENDING": keys.MAX_PENDING_NAMES,
    "FENCE_BLOCK": keys.FENCE_BLOCK,
    "TICKET_MS": int(keys.TICKET_TTL * 1000),
    "OTHER": keys.OTHER,
    "PROTOCOL": str(wire.PROTOCOL_VERSION),  # a string: compared with the stored field
}
WRITE_CONFIG_CONSTANTS: dict[str, int | str] = {
    "FENCE_BLOCK": keys.FENCE_BLOCK,
    "PROTOCOL": str(wire.PROTOCOL_VERSION),
}

_LINE = re.compile(r"user_script:(\d+)")


def read(name: str) -> str:
    """The text of ``guard/lua/<name>.lua`` (always ending with a newline)."""
    # A plain file read: importlib.resources would cost milliseconds of import per cold start.
    with open(os.path.join(LUA_DIR, f"{name}.lua"), encoding="utf-8") as f:
        text = f.read()
    return text if text.endswith("\n") else text + "\n"


def constants_line(consts: dict[str, int | str]) -> str:
    """``local A, B = 1, 'x'`` and a newline: strings single-quoted, numbers as integers."""
    values = (f"'{v}'" if isinstance(v, str) else str(v) for v in consts.values())
    return f"local {', '.join(consts)} = {', '.join(values)}\n"


@dataclass(frozen=True)
class Source:
    """One assembled script and the line ranges of its parts."""

    text: str
    parts: tuple[tuple[str, int], ...]  # (file name, number of lines), in order

    @classmethod
    def assemble(cls, parts: list[tuple[str, str]]) -> Source:
        return cls(
            "".join(text for _, text in parts),
            tuple((name, text.count("\n")) for name, text in parts),
        )

    def locate(self, line: int) -> tuple[str, int]:
        """(file, line in that file) for a line of the assembled source."""
        first = 1
        for name, count in self.parts:
            if line < first + count:
                return name, line - first + 1
            first += count
        return self.parts[-1][0], line - first + 1 + self.parts[-1][1]

    def where(self, message: str) -> str:
        """`message` with every ``user_script:<n>`` replaced by ``<file>:<line>``."""

        def sub(m: re.Match[str]) -> str:
            name, line = self.locate(int(m.group(1)))
            return f"{name}:{line}"

        return _LINE.sub(sub, message)


def lease_script(name: str) -> Source:
    """The constants line + struct_compat.lua + common.lua + ``<name>.lua``."""
    return Source.assemble(
        [
            ("(constants)", constants_line(CONSTANTS)),
            ("struct_compat.lua", read("struct_compat")),
            ("common.lua", read("common")),
            (f"{name}.lua", read(name)),
        ]
    )


def write_config_script() -> Source:
    return Source.assemble(
        [
            ("(constants)", constants_line(WRITE_CONFIG_CONSTANTS)),
            ("write_config.lua", read("write_config")),
        ]
    )
