"""Listening is exclusive: an address another process listens on is refused at start, with one
line that names the setting to change (never shared silently, never a traceback)."""

from __future__ import annotations

import errno
import socket


class ListenError(Exception):
    """This process cannot listen where a setting says; the message names the setting."""

    def __init__(self, setting: str, address: str, problem: str) -> None:
        super().__init__(
            f"{setting}={address}: {problem}; set {setting} to a free host:port (port 0 picks one)"
        )
        self.setting = setting
        self.address = address


def check_free(setting: str, address: str) -> None:
    """Raise ListenError unless `address` (host:port) can be listened on right now. Bound
    without SO_REUSEPORT, so a listener that shares its port with SO_REUSEPORT is found too."""
    host, _, port = address.rpartition(":")
    if int(port) == 0:
        return
    try:
        with socket.create_server((host.strip("[]"), int(port)), reuse_port=False):
            pass
    except OSError as exc:
        raise ListenError(setting, address, describe(exc)) from None


def describe(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the address is in use (another fmcp serve, or another program, listens there)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's"
    if exc.errno == errno.EACCES:
        return "listening there needs privileges this process lacks"
    return exc.strerror or str(exc)
