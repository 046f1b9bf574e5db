"""A certificate authority made with openssl for one test session: server and client certificates.

authority = Authority.create(directory)                 a CA (its own key, certificate ca.crt)
authority.issue("server", names=("IP:127.0.0.1",))      a certificate and key it signed
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # fast to make, unlike RSA


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    directory: Path
    name: str

    @property
    def ca(self) -> Path:
        return self.directory / f"{self.name}.crt"

    @property
    def key(self) -> Path:
        return self.directory / f"{self.name}.key"

    @classmethod
    def create(cls, directory: Path, name: str = "ca") -> Authority:
        if shutil.which("openssl") is None:
            pytest.fail("openssl is not installed: apt-get install openssl")
        directory.mkdir(parents=True, exist_ok=True)
        authority = cls(directory, name)
        _openssl("req", "-x509", *KEY, "-days", "2", "-subj", f"/CN=circleci-events test {name}",
                 "-keyout", str(authority.key), "-out", str(authority.ca))  # fmt: skip
        return authority

    def issue(self, name: str, *, names: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")) -> Issued:
        """A certificate for `names` (subjectAltName entries), signed by this authority."""
        issued = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        request = self.directory / f"{name}.csr"
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(f"subjectAltName={','.join(names)}\n" if names else "basicConstraints=CA:FALSE\n")
        _openssl("req", *KEY, "-subj", f"/CN={name}", "-keyout", str(issued.key), "-out", str(request))
        _openssl("x509", "-req", "-in", str(request), "-CA", str(self.ca), "-CAkey", str(self.key),
                 "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(issued.cert))  # fmt: skip
        return issued


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class ServerTLS:
    """A redis-server's TLS: its certificate, the CA it trusts for client certificates, and whether it
    asks clients for one (`tls-auth-clients`: yes, optional, no); `client` is what tests present."""

    authority: Authority
    server: Issued
    auth_clients: str = "no"
    client: Issued | None = None

    def server_config(self) -> dict[str, str]:
        """The redis-server (and sentinel) directives, by name."""
        return {"tls-cert-file": str(self.server.cert), "tls-key-file": str(self.server.key),
                "tls-ca-cert-file": str(self.authority.ca), "tls-auth-clients": self.auth_clients}  # fmt: skip

    def server_args(self) -> list[str]:
        return [part for name, value in self.server_config().items() for part in (f"--{name}", value)]

    def client_options(self) -> dict[str, object]:
        # the chain is checked, not the name: some of these servers are named for another host on purpose
        options: dict[str, object] = {"ssl": True, "ssl_ca_certs": str(self.authority.ca), "ssl_check_hostname": False}
        if self.client is not None:
            options.update(ssl_certfile=str(self.client.cert), ssl_keyfile=str(self.client.key))
        return options
