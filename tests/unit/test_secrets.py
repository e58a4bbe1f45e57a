"""cluster/secrets.py: keys, tokens, the CA and machine certificates, checked with
`cryptography` and by a real TLS handshake on loopback (Python's ssl, OpenSSL)."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster import secrets

NAMES = secrets.node_names("root.server.demo", "root", "10.210.1.10",
                           ["server.dc1.consul", "server.global.nomad"])


def test_gossip_keys_are_32_random_bytes_in_base64() -> None:
    keys = {secrets.gossip_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k, validate=True)) == 32 for k in keys)


def test_tokens_are_random_uuids() -> None:
    tokens = {secrets.token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(uuid.UUID(t).version == 4 for t in tokens)


def test_the_ca_is_a_self_signed_ca() -> None:
    _key, pem = secrets.make_ca("hashicluster test CA")
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)


def test_a_machine_certificate_names_the_machine_and_its_roles() -> None:
    ca_key, ca_pem = secrets.make_ca("hashicluster test CA")
    _key, pem = secrets.issue_certificate(ca_key, ca_pem, NAMES)
    cert = x509.load_pem_x509_certificate(pem.encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["root.server.demo", "root", "localhost",
                                                     "server.dc1.consul", "server.global.nomad"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.210.1.10", "127.0.0.1"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_another_ca_did_not_sign_it() -> None:
    ca_key, ca_pem = secrets.make_ca("one")
    _other_key, other_pem = secrets.make_ca("two")
    _key, pem = secrets.issue_certificate(ca_key, ca_pem, NAMES)
    with pytest.raises((ValueError, TypeError)):
        x509.load_pem_x509_certificate(pem.encode()).verify_directly_issued_by(
            x509.load_pem_x509_certificate(other_pem.encode()))


def _serve_once(tmp_path: Path, key: str, cert: str, ca: str) -> tuple[int, threading.Thread, list[str]]:
    """A TLS server on loopback that wants a client certificate from the CA; it records the
    client certificate's common name, or the error."""
    (tmp_path / "server.key").write_text(key)
    (tmp_path / "server.pem").write_text(cert)
    (tmp_path / "ca.pem").write_text(ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(tmp_path / "server.pem"), str(tmp_path / "server.key"))
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    der = tls.getpeercert(binary_form=True) or b""
                    name = x509.load_der_x509_certificate(der).subject
                    seen.append(str(name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value))
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as err:
                seen.append(f"error: {err}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, seen


def test_mutual_tls_between_two_machines_of_the_cluster(tmp_path: Path) -> None:
    ca_key, ca_pem = secrets.make_ca("hashicluster test CA")
    server_key, server_cert = secrets.issue_certificate(ca_key, ca_pem, NAMES)
    client_key, client_cert = secrets.issue_certificate(
        ca_key, ca_pem, secrets.node_names("client1.demo", "client1", "10.210.1.31", ["client.global.nomad"]))
    port, thread, seen = _serve_once(tmp_path, server_key, server_cert, ca_pem)
    (tmp_path / "client.key").write_text(client_key)
    (tmp_path / "client.pem").write_text(client_cert)
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    context.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
    # The name Nomad checks with verify_server_hostname.
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            context.wrap_socket(raw, server_hostname="server.global.nomad") as tls:
        assert tls.recv(2) == b"ok"
    thread.join(5)
    assert seen == ["client1.demo"]


def test_a_client_without_the_ca_cannot_trust_the_server(tmp_path: Path) -> None:
    ca_key, ca_pem = secrets.make_ca("hashicluster test CA")
    server_key, server_cert = secrets.issue_certificate(ca_key, ca_pem, NAMES)
    port, thread, seen = _serve_once(tmp_path, server_key, server_cert, ca_pem)
    context = ssl.create_default_context()  # the system's CAs only
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname="server.global.nomad")
    thread.join(5)
    assert seen and seen[0].startswith("error")


def test_the_providers_make_values_once() -> None:
    provider = secrets.ClusterSecretsProvider()
    made = provider.create({"stack": "unit"}).outs or {}
    assert set(secrets.CLUSTER_OUTPUTS) <= set(made)
    assert made["consul_gossip_key"] != made["nomad_gossip_key"]
    assert len({made[f"{t}_token"] for t in secrets.TOKENS}) == len(secrets.TOKENS)
    assert provider.diff("id", made, {"stack": "unit"}).changes is False
    node = secrets.NodeCredentialsProvider()
    inputs = {**NAMES.as_inputs(), "ca_key_pem": made["ca_key_pem"], "ca_cert_pem": made["ca_cert_pem"]}
    creds = node.create(inputs).outs or {}
    assert "BEGIN PRIVATE KEY" in creds["key_pem"] and "BEGIN CERTIFICATE" in creds["cert_pem"]
    assert node.diff("id", creds, inputs).changes is False
    moved = {**inputs, "ip_addresses": ["10.210.1.11", "127.0.0.1"]}
    diff = node.diff("id", creds, moved)
    assert diff.changes and diff.replaces == ["ip_addresses"]


def test_nomad_tokens_are_read_from_the_acl_steps_output() -> None:
    from cluster.services import acl
    out = "Nomad's ACL system: ready\nmachine 11111111-2222-4333-8444-555555555555\njobs " \
          "66666666-7777-4888-8999-aaaaaaaaaaaa\nstatus 77777777-8888-4999-8aaa-bbbbbbbbbbbb\n"
    assert acl.parse_nomad_tokens(out) == {"machine": "11111111-2222-4333-8444-555555555555",
                                           "jobs": "66666666-7777-4888-8999-aaaaaaaaaaaa",
                                           "status": "77777777-8888-4999-8aaa-bbbbbbbbbbbb"}
    # A broken answer (here: a usage text) is refused, and never repeated in the error.
    with pytest.raises(ValueError, match="no valid Nomad token for machine, jobs, status") as err:
        acl.parse_nomad_tokens("machine Usage: nomad acl token info\njobs \n")
    assert "Usage" not in str(err.value)


def test_a_token_secret_is_made_once_and_kept() -> None:
    provider = secrets.TokenSecretProvider()
    made = provider.create({"secret": None}).outs
    assert made is not None and uuid.UUID(made["secret"]).version == 4
    # A later `pulumi up` keeps it: only `--replace` makes another.
    assert not provider.diff("id", made, {"secret": None}).changes
