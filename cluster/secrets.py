"""The cluster's secrets as Pulumi resources: made once, kept encrypted in the stack's state.

    keys = ClusterSecrets("secrets", stack="lab")
    creds = NodeCredentials("client1-credentials", ca=keys, names=CertNames(...))

- `ClusterSecrets`: the gossip keys of Consul and Nomad, the cluster's certificate authority
  (an ECDSA P-256 key and its self-signed certificate) and the ACL tokens of the cluster's
  users: the Consul and Nomad management tokens and the narrow Consul tokens of consul-template
  and of the Nomad agents. Random when created; nothing
  to compare afterwards, so it never changes by itself (`pulumi up --replace URN` rotates).
- `TokenSecret`: one more token's secret, made once (the read-only status token of Consul): a
  resource of its own, so a stack made before it gains it without ClusterSecrets changing.
- `NodeCredentials`: per machine, a TLS key and a certificate the CA signs for the machine's
  names and addresses (and the role names Consul and Nomad check: `server.dc1.consul`,
  `server.global.nomad`, `client.global.nomad`), and the machine's own Consul agent token.
  Made again (a new key) when its names change.

Every output but the certificates is a secret (`additional_secret_outputs`): Pulumi encrypts
it in the state and shows `[secret]` in previews. The keys are made by `cryptography`, never by a shell.
Pulumi runs the providers in a separate process from a dill pickle that refers to this module
by name, as for cluster/jobs.py.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import secrets as random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi import dynamic

CA_YEARS = 10
CERT_YEARS = 5
# The tokens ClusterSecrets makes: Consul's and Nomad's management tokens, and Consul's for
# consul-template and for the Nomad agents. (Nomad makes the secrets of its other tokens
# itself: the nomad-acl step creates them and hands them on.)
TOKENS = ("consul_management", "nomad_management", "consul_template", "nomad_consul")
CLUSTER_OUTPUTS = ("consul_gossip_key", "nomad_gossip_key", "ca_key_pem", "ca_cert_pem",
                   *(f"{t}_token" for t in TOKENS))
PUBLIC_OUTPUTS = ("ca_cert_pem", "cert_pem")  # certificates: no secret
NODE_OUTPUTS = ("key_pem", "cert_pem", "consul_agent_token")


def gossip_key() -> str:
    """32 random bytes, base64: the key Consul's `encrypt` and Nomad's `server.encrypt` take."""
    return base64.b64encode(random.token_bytes(32)).decode()


def token() -> str:
    """A random UUID: the form of Consul and Nomad token secrets."""
    return str(uuid.UUID(bytes=random.token_bytes(16), version=4))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_ca(name: str) -> tuple[str, str]:
    """A new certificate authority: (key PEM, certificate PEM), valid CA_YEARS."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_key(key), cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class CertNames:
    """What a machine's certificate is valid for."""

    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]

    def as_inputs(self) -> dict[str, Any]:
        return {"common_name": self.common_name, "dns_names": list(self.dns_names),
                "ip_addresses": list(self.ip_addresses)}


def issue_certificate(ca_key_pem: str, ca_cert_pem: str, names: CertNames) -> tuple[str, str]:
    """A new key and a certificate for NAMES signed by the CA, for TLS servers and clients
    both (Consul and Nomad agents are both): (key PEM, certificate PEM)."""
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in names.ip_addresses]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=365 * CERT_YEARS), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_agreement=True,
                                     content_commitment=False, data_encipherment=False,
                                     key_cert_sign=False, crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem_key(key), cert.public_bytes(serialization.Encoding.PEM).decode()


def cluster_secrets(stack: str) -> dict[str, str]:
    """Every value of ClusterSecrets, new."""
    ca_key, ca_cert = make_ca(f"hashicluster {stack} CA")
    values = {"consul_gossip_key": gossip_key(), "nomad_gossip_key": gossip_key(),
              "ca_key_pem": ca_key, "ca_cert_pem": ca_cert}
    values.update({f"{t}_token": token() for t in TOKENS})
    return values


class ClusterSecretsProvider(dynamic.ResourceProvider):
    """Creates the values once; an update keeps them (only `stack`, a label, can change)."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(id_=str(uuid.uuid4()), outs={**props, **cluster_secrets(props["stack"])})

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=False)


class TokenSecretProvider(dynamic.ResourceProvider):
    """Creates one token secret; an update keeps it (`pulumi up --replace URN` rotates)."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(id_=str(uuid.uuid4()), outs={**props, "secret": token()})

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=False)


class NodeCredentialsProvider(dynamic.ResourceProvider):
    """A key and certificate for a machine's names, and its Consul agent token."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        names = CertNames(props["common_name"], tuple(props["dns_names"]), tuple(props["ip_addresses"]))
        key, cert = issue_certificate(props["ca_key_pem"], props["ca_cert_pem"], names)
        return dynamic.CreateResult(id_=str(uuid.uuid4()), outs={
            **props, "key_pem": key, "cert_pem": cert, "consul_agent_token": token()})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [k for k in ("common_name", "dns_names", "ip_addresses", "ca_cert_pem")
                   if olds.get(k) != news.get(k)]
        return dynamic.DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)


class ClusterSecrets(dynamic.Resource):
    """Gossip keys, the CA and the cluster-wide ACL tokens (see the module's docstring)."""

    consul_gossip_key: pulumi.Output[str]
    nomad_gossip_key: pulumi.Output[str]
    ca_key_pem: pulumi.Output[str]
    ca_cert_pem: pulumi.Output[str]
    consul_management_token: pulumi.Output[str]
    nomad_management_token: pulumi.Output[str]
    consul_template_token: pulumi.Output[str]
    nomad_consul_token: pulumi.Output[str]

    def __init__(self, name: str, stack: str, opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=[
            o for o in CLUSTER_OUTPUTS if o not in PUBLIC_OUTPUTS])
        super().__init__(ClusterSecretsProvider(), name,
                         {"stack": stack, **dict.fromkeys(CLUSTER_OUTPUTS)},
                         pulumi.ResourceOptions.merge(secret, opts))


class TokenSecret(dynamic.Resource, module="secrets", name="TokenSecret"):
    """One ACL token's secret made by the program after ClusterSecrets' (the read-only status
    token of Consul): a resource of its own, so a stack made before it only gains it."""

    secret: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["secret"])
        super().__init__(TokenSecretProvider(), name, {"secret": None},
                         pulumi.ResourceOptions.merge(secret, opts))


class NodeCredentials(dynamic.Resource):
    """One machine's TLS key and certificate, and its Consul agent token."""

    key_pem: pulumi.Output[str]
    cert_pem: pulumi.Output[str]
    consul_agent_token: pulumi.Output[str]

    def __init__(self, name: str, ca: ClusterSecrets, names: CertNames,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=[
            o for o in NODE_OUTPUTS if o not in PUBLIC_OUTPUTS])
        super().__init__(NodeCredentialsProvider(), name,
                         {**names.as_inputs(), "ca_key_pem": ca.ca_key_pem, "ca_cert_pem": ca.ca_cert_pem,
                          **dict.fromkeys(NODE_OUTPUTS)},
                         pulumi.ResourceOptions.merge(secret, opts))


def node_names(hostname: str, short: str, address: str, roles: Sequence[str]) -> CertNames:
    """The names a machine's certificate covers: its own, loopback, and its ROLES (the names
    Consul and Nomad check with `verify_server_hostname`)."""
    return CertNames(common_name=hostname, dns_names=(hostname, short, "localhost", *roles),
                     ip_addresses=(address, "127.0.0.1"))
