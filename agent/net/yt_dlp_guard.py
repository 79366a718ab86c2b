"""The address check inside yt-dlp, which resolves and connects on its own.

yt-dlp's urllib request handler opens every connection with the function
``yt_dlp.networking._urllib.create_connection``; ``install`` replaces it (process-wide, once)
with one that resolves through the current ``AddressPolicy``, refuses the host unless every
address passes and connects only to those addresses. ``guard`` then limits a ``YoutubeDL`` to
that handler (the requests handler connects through urllib3's own function, which is not ours to
replace for the whole process). yt-dlp hands some downloads to programs that connect by
themselves (ffmpeg for an HLS stream the native downloader cannot decrypt, rtmpdump, curl,
aria2c): while the policy refuses any address, ``install`` makes those downloaders refuse to run.
If a yt-dlp upgrade renames what this relies on, ``install`` fails loudly rather than letting
downloads through unchecked. The policy is the process's last installed one: an agent has one
policy, from its settings.
"""

from __future__ import annotations

import importlib
import socket
import threading
from typing import Any

from taskpost.agent.net.addresses import AddressPolicy, UnsafeAddress

_MODULE = "yt_dlp.networking._urllib"
_OUTSIDE_DOWNLOADERS = (("yt_dlp.downloader.external", "ExternalFD"), ("yt_dlp.downloader.rtmp", "RtmpFD"))
"""Downloaders that run another program, which would connect without the check."""
_lock = threading.Lock()
_policy = AddressPolicy()
_original: Any = None
_seen = threading.local()


class RefusedAddress(OSError):
    """Raised inside yt-dlp for a refused host; carries the ``UnsafeAddress`` to report."""

    def __init__(self, error: UnsafeAddress) -> None:
        super().__init__(error.message)
        self.error = error


def _guarded_create_connection(
    address: tuple[str, int],
    timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    source_address: Any = None,
    *,
    _create_socket_func: Any = None,
) -> socket.socket:
    host, port = address
    policy = _policy
    try:
        addresses = policy.check_host(host, port)
    except UnsafeAddress as exc:
        raise _refuse(exc) from exc
    connect = _create_socket_func or _original.__kwdefaults__["_create_socket_func"]
    failure: OSError = OSError(f"{host} has no address")
    for ip in addresses:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sockaddr = (str(ip), port, 0, 0) if ip.version == 6 else (str(ip), port)
        try:
            sock: socket.socket = connect(
                (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr), timeout, source_address
            )
            return sock
        except OSError as exc:
            failure = exc
    raise failure


def _refuse(error: UnsafeAddress) -> RefusedAddress:
    _seen.refusals = [*getattr(_seen, "refusals", []), error]
    return RefusedAddress(error)


def _checked_outside_download(original: Any) -> Any:
    def real_download(self: Any, filename: str, info_dict: dict[str, Any]) -> Any:
        if _policy.allow_private:
            return original(self, filename, info_dict)
        raise _refuse(
            UnsafeAddress(
                f"refused: yt-dlp would hand this download to {self.get_basename()}, which connects "
                "without the agent's address check (an encrypted HLS stream, RTMP, ...); "
                "only an agent started with --allow-private-urls runs such downloads"
            )
        )

    real_download.__wrapped__ = original  # type: ignore[attr-defined]
    return real_download


def _guard_outside_downloaders() -> None:
    for module_name, class_name in _OUTSIDE_DOWNLOADERS:
        downloader = getattr(importlib.import_module(module_name), class_name, None)
        current = vars(downloader).get("real_download") if downloader is not None else None
        if current is None:
            raise RuntimeError(
                f"yt-dlp changed: {module_name}.{class_name}.real_download is gone; the agent cannot "
                "stop it from running programs that connect without the address check"
            )
        if not hasattr(current, "__wrapped__"):
            downloader.real_download = _checked_outside_download(current)  # type: ignore[union-attr]


def install(policy: AddressPolicy) -> None:
    """Make yt-dlp's urllib handler connect through ``policy`` from now on (whole process)."""
    global _policy, _original
    module = importlib.import_module(_MODULE)
    with _lock:
        _policy = policy
        _guard_outside_downloaders()
        current = getattr(module, "create_connection", None)
        if current is _guarded_create_connection:
            return
        defaults = getattr(current, "__kwdefaults__", None) or {}
        if current is None or "_create_socket_func" not in defaults or not hasattr(module, "UrllibRH"):
            raise RuntimeError(
                f"yt-dlp changed: {_MODULE}.create_connection(..., _create_socket_func=) is gone; "
                "the agent cannot check the addresses yt-dlp connects to"
            )
        _original = current
        module.create_connection = _guarded_create_connection  # type: ignore[attr-defined]


def guard(ydl: Any, policy: AddressPolicy) -> None:
    """Limit ``ydl`` (a ``YoutubeDL``) to the urllib handler, whose connections ``policy`` checks."""
    install(policy)
    module = importlib.import_module(_MODULE)
    if "_request_director" in vars(ydl):
        ydl._request_director.close()
    ydl.__dict__["_request_director"] = ydl.build_request_director([module.UrllibRH])


def take_refusal() -> UnsafeAddress | None:
    """The first host this thread's yt-dlp calls refused since the last call; yt-dlp's downloaders
    report such a failure as text, without the exception, so the refusal is kept here too."""
    refusals: list[UnsafeAddress] = getattr(_seen, "refusals", [])
    _seen.refusals = []
    return refusals[0] if refusals else None
