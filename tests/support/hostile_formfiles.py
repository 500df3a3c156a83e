"""Hostile Formfiles (YAML alias bombs) for the tests of bounded parsing."""

from __future__ import annotations


def nested_alias_bomb(levels: int = 8) -> str:
    """The short one: each anchor a list of nine aliases of the one before, the last one
    used where an error message shows the value: 9**levels values (8 levels: 302 bytes for
    43 million; 9: 337 bytes, which took the old parser about 40 s)."""
    names = "abcdefghij"
    lines = ["name: x", "a: &a [x,x,x,x,x,x,x,x,x]"]
    for level in range(1, levels):
        name, before = names[level], names[level - 1]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{before}"] * 9) + "]")
    lines.append(f"resources: {{vcpus: *{names[levels - 1]}}}")
    return "\n".join(lines) + "\n"


def billion_laughs(levels: int = 9) -> str:
    """The classic: levels of ten aliases each, 10**levels "lol"s (9: a billion, which the
    old parser took almost three minutes over; 8: about 17 s)."""
    lines = ['lol0: &lol0 "lol"']
    lines += [
        f"lol{n}: &lol{n} [" + ",".join([f"*lol{n - 1}"] * 10) + "]" for n in range(1, levels + 1)
    ]
    return "name: x\n" + "\n".join(lines) + f"\nresources: {{vcpus: *lol{levels}}}\n"
