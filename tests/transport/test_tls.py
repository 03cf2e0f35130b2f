"""Mutual TLS 1.3 under the WebSocket links, on real sockets (127.0.0.1, port 0): a link
with the cluster's certificates works; a certificate from another CA, an expired one, one
not yet valid, one naming another member, and plain ws:// against the TLS port are
refused with a counted reason; the dialer refuses a server that is not the replica it
meant to reach."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trio
from wsproto.events import CloseConnection

from node.certs import issue, make_ca, write_member
from tests.transport.helpers import IDS, PUB, RawWs, make_listener, wait_until
from transport import ClientConfig, HandshakeFailed, TransportError, open_client
from transport.tls import (
    TLS_EXPIRED,
    TLS_NOT_TLS,
    TLS_UNKNOWN_CA,
    TlsNetwork,
    TlsRefused,
    client_context,
    server_context,
)
from transport.tls_names import TLS_NAME_MISMATCH


class Pki:
    """A cluster CA in `directory` and certificates issued on demand."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_cert, self.ca_key = make_ca()
        self.ca = directory / "ca.crt"
        from cryptography.hazmat.primitives.serialization import Encoding

        self.ca.write_bytes(self.ca_cert.public_bytes(Encoding.PEM))

    def member(self, name: str, *names: str, ca=None, **validity) -> tuple[Path, Path]:
        ca_cert, ca_key = ca or (self.ca_cert, self.ca_key)
        label = f"{name}-{len(list(self.dir.iterdir()))}"
        write_member(self.dir, label, *issue(ca_cert, ca_key, [name, *names], **validity))
        return self.dir / f"{label}.crt", self.dir / f"{label}.tls.key"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def serve_tls(nursery, rec, pki: Pki, server_name: str = "replica-0"):
    cert, key = pki.member(server_name, "127.0.0.1")
    listener = make_listener(rec)
    net = TlsNetwork(server_context(pki.ca, cert, key), client_context(pki.ca, cert, key), {})
    port = await nursery.start(net.serve, listener)
    return listener, port


def dialing(pki: Pki, port: int, cert_key: tuple[Path, Path], expect: str = "replica-0"):
    net = TlsNetwork(None, client_context(pki.ca, *cert_key), {("127.0.0.1", port): expect})
    return net.dialer("client", "127.0.0.1", port)


def client(port: int, dialer):
    return open_client(
        "127.0.0.1",
        port,
        principal="client",
        private_key=IDS["client"].private_key,
        replica="0",
        replica_key=PUB["0"],
        config=ClientConfig(connect_timeout_s=2.0, handshake_timeout_s=1.0),
        dialer=dialer,
    )


async def test_a_link_with_the_cluster_certificates_works(nursery, rec, pki) -> None:
    _, port = await serve_tls(nursery, rec, pki)
    async with client(port, dialing(pki, port, pki.member("client-client"))) as c:
        await c.send(b"over tls")
        assert await c.receive() == b"re:over tls"
    assert rec.invalid == []
    assert rec.frames == [("client", b"over tls")]


@pytest.mark.parametrize(
    ("case", "reason"),
    [("other_ca", TLS_UNKNOWN_CA), ("expired", TLS_EXPIRED), ("not_yet_valid", TLS_EXPIRED)],
)
async def test_a_bad_client_certificate_is_refused_and_counted(
    nursery, rec, pki, case: str, reason: str
) -> None:
    _, port = await serve_tls(nursery, rec, pki)
    now = dt.datetime.now(dt.UTC)
    if case == "other_ca":
        cert_key = pki.member("client-client", ca=make_ca("another CA"))
    elif case == "expired":
        cert_key = pki.member("client-client", not_before=now - dt.timedelta(days=10), days=1)
    else:
        cert_key = pki.member("client-client", not_before=now + dt.timedelta(days=1))
    with pytest.raises((TransportError, OSError)):
        async with client(port, dialing(pki, port, cert_key)) as c:
            await c.send(b"x")
            await c.receive()
    await wait_until(lambda: reason in rec.reasons())
    assert rec.frames == []


async def test_a_certificate_naming_another_member_is_refused(nursery, rec, pki) -> None:
    _, port = await serve_tls(nursery, rec, pki)
    # a valid certificate of the cluster, but of principal "mallory", used to log in as
    # "client": the Ed25519 handshake succeeds, the name check closes the link
    with pytest.raises((TransportError, OSError)):
        async with client(port, dialing(pki, port, pki.member("client-mallory"))) as c:
            await c.send(b"x")
            await c.receive()
    await wait_until(lambda: TLS_NAME_MISMATCH in rec.reasons())
    assert rec.frames == []
    assert ("127.0.0.1", TLS_NAME_MISMATCH) in rec.invalid  # blamed on the address, not a name


async def test_plain_websocket_against_a_tls_port_is_refused(nursery, rec, pki) -> None:
    _, port = await serve_tls(nursery, rec, pki)
    raw = await RawWs.tcp(port)
    with trio.fail_after(5):
        answer = await raw.upgrade()  # an HTTP upgrade in clear
    assert isinstance(answer, CloseConnection) and answer.code == 1006  # no HTTP answer
    await wait_until(lambda: TLS_NOT_TLS in rec.reasons())


async def test_the_dialer_refuses_a_server_that_is_another_replica(nursery, rec, pki) -> None:
    _, port = await serve_tls(nursery, rec, pki, server_name="replica-1")
    dial = dialing(pki, port, pki.member("client-client"), expect="replica-0")
    with pytest.raises(TlsRefused) as info:
        await dial()
    assert info.value.reason == TLS_NAME_MISMATCH


async def test_the_handshake_identity_still_counts_under_tls(nursery, rec, pki) -> None:
    _, port = await serve_tls(nursery, rec, pki)
    dialer = dialing(pki, port, pki.member("client-client"))
    with pytest.raises(HandshakeFailed):
        async with open_client(
            "127.0.0.1",
            port,
            principal="client",
            private_key=IDS["client"].private_key,
            replica="0",
            replica_key=PUB["1"],  # expects another replica's key: the Ed25519 check fails
            dialer=dialer,
        ):
            pass
