"""A throwaway OpenLDAP slapd with the nis/posix and gridhub schemas, on free loopback ports."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from .process import Daemon, free_port, port_open
from .tls import TLSFiles

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = ["core", "cosine", "nis", "inetorgperson"]


class Slapd:
    """slapd in the foreground with an mdb database loaded from ``deploy/ldap/bootstrap.ldif``.

    Listens on ``ldap://127.0.0.1:port`` and, with ``tls``, on ``ldaps://127.0.0.1:tls_port``
    (StartTLS works on the plain port too).
    """

    suffix = "dc=migrid,dc=org"
    rootdn = "cn=admin,dc=migrid,dc=org"

    def __init__(self, workdir: Path, tls: TLSFiles | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.tls_port}" if tls else None
        self.conf = self.dir / "slapd.conf"
        self.daemon: Daemon | None = None
        self._configure()

    def _configure(self) -> None:
        (self.dir / "db").mkdir(exist_ok=True)
        lines = [f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS]
        lines += [
            f"include {REPO / 'deploy/ldap/gridhub.schema'}",
            f"pidfile {self.dir / 'slapd.pid'}",
            f"argsfile {self.dir / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
        ]
        if self.tls:
            lines += [
                f"TLSCACertificateFile {self.tls.ca}",
                f"TLSCertificateFile {self.tls.cert}",
                f"TLSCertificateKeyFile {self.tls.key}",
            ]
        lines += [
            "database mdb",
            "maxsize 268435456",
            f'suffix "{self.suffix}"',
            f'rootdn "{self.rootdn}"',
            f"rootpw {self.password}",
            f"directory {self.dir / 'db'}",
            "index objectClass eq",
            "index uid eq",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.conf.chmod(0o600)
        _run(["slaptest", "-u", "-f", str(self.conf)])
        _run(["slapadd", "-f", str(self.conf), "-l", str(REPO / "deploy/ldap/bootstrap.ldif")])

    def start(self) -> None:
        urls = self.url + "/" + (f" {self.ldaps_url}/" if self.ldaps_url else "")
        self.daemon = Daemon(
            "slapd",
            ["/usr/sbin/slapd", "-f", str(self.conf), "-h", urls, "-d", "0"],
            self.dir / "slapd.log",
        )
        self.daemon.start(lambda: port_open("127.0.0.1", self.port), timeout=15)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
