"""An httpx client whose every connection, redirect hops included, passes an ``AddressPolicy``.

The check lives in the connection layer (``GuardedBackend``, an httpcore network backend): it
resolves the host once, refuses it unless every address passes, then connects to one of those
addresses, so neither a redirect nor a name that re-resolves differently (DNS rebinding) slips
past it. TLS still verifies the certificate for the URL's host name. ``trust_env=False``: a
proxy from the environment would otherwise make the connection for us, unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpcore
import httpx

from taskpost.agent.net.addresses import AddressPolicy

USER_AGENT = "taskpost"

_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's errors as the httpx ones callers catch (what ``httpx.HTTPTransport`` does)."""
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


class GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the policy passes, and to exactly those it checked."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.NetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._policy.check_host(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for ip in addresses:
            try:
                return self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("URLs of jobs never go to a unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _Body(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool that connects through a ``GuardedBackend``."""

    def __init__(self, policy: AddressPolicy, *, backend: httpcore.NetworkBackend | None = None) -> None:
        self._pool = httpcore.ConnectionPool(network_backend=GuardedBackend(policy, backend))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def guarded_client(
    policy: AddressPolicy,
    *,
    timeout_s: float,
    max_redirects: int = 5,
    backend: httpcore.NetworkBackend | None = None,
) -> httpx.Client:
    """A client that follows at most ``max_redirects`` redirects, each hop checked by ``policy``."""
    return httpx.Client(
        transport=GuardedTransport(policy, backend=backend),
        follow_redirects=True,
        max_redirects=max_redirects,
        timeout=httpx.Timeout(timeout_s),
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
