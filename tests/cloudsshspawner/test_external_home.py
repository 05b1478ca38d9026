"""Persistent homes on an external SFTP service ("ERDA"), with the credential forwarded at login.

The service is a throwaway OpenSSH sshd on 127.0.0.1 (which the remote host, in its own network
namespace, cannot reach): one sftp-only user with a password, chrooted, in a private mount
namespace whose /etc/passwd and /etc/shadow name that user (this machine's are left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.cloudsshspawner.conftest import SECRET, Remote, cloudssh_config, status
from tests.cloudsshspawner.test_persistent_home import contents, is_mounted, ssh
from tests.harness.hub import spawn
from tests.harness.process import free_port
from tests.harness.sshd import keygen

ERDA_UID = 4242
PASSWORD = "erda-session-password-" + "7d1f0c9b2e"
PASSWORD_HEADER = "X-Erda-Password"


class ERDA:
    """An SFTP-only OpenSSH service: user ``erda-<name>`` (password ``password``), chrooted to
    ``chroot``; the files land in ``data`` (the user's directory, ``/data`` on the service)."""

    def __init__(
        self, directory: Path, password: str = PASSWORD, client_key: Path | None = None
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.username = "erdauser"
        self.password = password
        self.client_key = client_key  # also accepted, when given
        self.port = free_port()
        self.chroot = self.dir / "chroot"
        self.data = self.chroot / "data"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    def known_hosts_line(self, key: Path | None = None) -> str:
        public = Path(f"{key or self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {' '.join(public)}\n"

    def start(self) -> None:
        keygen(self.host_key, "erda")
        self.chroot.mkdir(mode=0o755)
        self.data.mkdir(mode=0o700)
        os.chown(self.data, ERDA_UID, ERDA_UID)
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=self.password,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        passwd, shadow, group = (self.dir / name for name in ("passwd", "shadow", "group"))
        passwd.write_text(
            Path("/etc/passwd").read_text()
            + f"{self.username}:x:{ERDA_UID}:{ERDA_UID}::/data:/bin/sh\n"
        )
        shadow.write_text(
            Path("/etc/shadow").read_text() + f"{self.username}:{hashed}:19000:0:99999:7:::\n"
        )
        group.write_text(Path("/etc/group").read_text() + f"{self.username}:x:{ERDA_UID}:\n")
        shadow.chmod(0o600)
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    "UsePAM no",
                    "StrictModes no",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    *self._key_settings(),
                    "PermitRootLogin no",
                    f"AllowUsers {self.username}",
                    # Every path component of a chroot must be root-owned and not writable by
                    # others (the test's directory is under /tmp): the chroot is bound at /mnt.
                    "ChrootDirectory /mnt",
                    "Subsystem sftp internal-sftp -d /data",
                    "ForceCommand internal-sftp -d /data",
                    "DisableForwarding yes",
                    "LogLevel VERBOSE",
                ]
            )
            + "\n"
        )
        script = (
            'set -e; mount --make-rprivate /; mount --bind "$1/passwd" /etc/passwd;'
            ' mount --bind "$1/shadow" /etc/shadow; mount --bind "$1/group" /etc/group;'
            ' mount --bind "$1/chroot" /mnt; if [ -d "$1/keys" ]; then mount --bind "$1/keys" /srv; fi;'
            ' exec /usr/sbin/sshd -D -e -f "$1/sshd_config"'
        )
        with open(self.dir / "sshd.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "sh", "-c", script, "erda", str(self.dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the ERDA sshd did not start:\n{self.log()}")
            time.sleep(0.05)

    def _key_settings(self) -> list[str]:
        if self.client_key is None:
            return ["PubkeyAuthentication no", "AuthenticationMethods password"]
        # sshd reads the file as the user, who cannot enter the test's directory: it is bound at
        # /srv in the service's mount namespace.
        keys = self.dir / "keys"
        keys.mkdir(mode=0o755, exist_ok=True)
        (keys / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        (keys / "authorized_keys").chmod(0o644)
        return [
            "PubkeyAuthentication yes",
            "AuthorizedKeysFile /srv/authorized_keys",
            "AuthenticationMethods password publickey",
        ]

    def log(self) -> str:
        return (self.dir / "sshd.log").read_text(errors="replace")

    def drop_sessions(self) -> None:
        """Kill the sshd processes serving logged-in sessions (the listener stays)."""
        assert self.proc is not None
        namespace = os.readlink(f"/proc/{self.proc.pid}/ns/mnt")
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                if not entry.name.isdigit() or int(entry.name) == self.proc.pid:
                    continue
                if os.readlink(entry / "ns" / "mnt") != namespace:
                    continue
                if (entry / "cmdline").read_bytes().startswith(f"sshd: {self.username}".encode()):
                    os.kill(int(entry.name), signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def erda(tmp_path: Path):
    service = ERDA(tmp_path / "erda")
    service.start()
    try:
        yield service
    finally:
        service.stop()


def erda_config(remote: Remote, erda: ERDA, known_hosts: Path, mount: Path, extra: str = "") -> str:
    setting = {
        "host": "127.0.0.1",
        "port": erda.port,
        "known_hosts": str(known_hosts),
        "username_key": "erda_user",
        "password_key": "erda_password",
        "path": "/data",
    }
    return cloudssh_config(
        remote,
        f"""
c.Authenticator.enable_auth_state = True
c.HeaderAuthenticator.allowed_headers = {{
    "auth": "Remote-User", "erda_user": "X-Erda-User", "erda_password": {PASSWORD_HEADER!r}
}}
c.CloudSSHSpawner.persistent_home_sftp = {setting!r}
c.CloudSSHSpawner.persistent_home_mount = {str(mount)!r}
{extra}""",
    )


def login(hub, user: str, erda_user: str | None, password: str | None) -> None:
    headers = {"Remote-User": user, "X-Gridhub-Secret": SECRET}
    if erda_user is not None:
        headers["X-Erda-User"] = erda_user
    if password is not None:
        headers[PASSWORD_HEADER] = password
    assert httpx.get(f"{hub.url}/hub/login", headers=headers).status_code == 302


def namespace_processes(remote: Remote) -> list[int]:
    out = subprocess.run(
        ["ip", "netns", "pids", str(remote.host.namespace)], capture_output=True, text=True
    ).stdout
    return [int(pid) for pid in out.split()]


def files_holding(directory: Path, secret: bytes) -> list[Path]:
    found = []
    for path in directory.rglob("*") if directory.exists() else []:
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
                found.append(path)
    return found


def test_home_on_an_external_sftp_service_with_the_forwarded_password(
    remote, erda, hub_factory, tmp_path
):
    known_hosts = tmp_path / "erda_known_hosts"
    known_hosts.write_text(erda.known_hosts_line())
    mount = tmp_path / "mnt"
    hub = hub_factory(erda_config(remote, erda, known_hosts, mount))
    login(hub, "alice", erda.username, erda.password)
    events: list[str] = []
    ok, message = spawn(hub, "alice", events=events)
    assert ok, message + "\n" + hub.log()[-3000:]
    assert status(hub, "alice").status_code == 200

    # The notebook saves through its contents API: the file lands on the service.
    saved = contents(
        hub, "alice", "PUT", "notes.txt", json={"type": "file", "format": "text", "content": "hi"}
    )
    assert saved.status_code in (200, 201), saved.text
    assert (erda.data / "notes.txt").read_text() == "hi"
    assert (erda.data / "notes.txt").stat().st_uid == ERDA_UID
    assert not (mount / "notes.txt").exists()  # nothing on the host's own disk
    assert is_mounted(remote, mount)
    assert f"Accepted password for {erda.username} from 127.0.0.1" in erda.log()

    # The password never reaches the remote host: no process's argv or environment there, no
    # file it was given, and not the hub's log either.
    secret = erda.password.encode()
    pids = namespace_processes(remote)
    assert any(b"sshfs" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids)
    for pid in pids:
        for name in ("cmdline", "environ"):
            with contextlib.suppress(OSError):
                assert secret not in Path(f"/proc/{pid}/{name}").read_bytes(), (pid, name)
    assert files_holding(remote.root, secret) == []
    assert secret.decode() not in hub.log()
    sshfs = ssh(remote, "ps -o args= -C sshfs").stdout
    assert "passive" in sshfs and "127.0.0.1" not in sshfs

    # The service drops the hub's session: sshfs ends, and the spawner mounts the home again.
    mounted = "Mounted alice's persistent home (the storage service"
    assert hub.log().count(mounted) == 1
    erda.drop_sessions()
    deadline = time.monotonic() + 60
    while hub.log().count(mounted) < 2:
        assert time.monotonic() < deadline, "the home was not mounted again after the drop"
        time.sleep(0.5)
    assert "is no longer mounted" in hub.log()
    again = contents(
        hub, "alice", "PUT", "again.txt", json={"type": "file", "format": "text", "content": "2"}
    )
    assert again.status_code in (200, 201), again.text
    assert (erda.data / "again.txt").read_text() == "2"

    # Stop: unmounted, the file stays on the service; the next spawn finds it.
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while is_mounted(remote, mount):
        assert time.monotonic() < deadline, "the home is still mounted after stop"
        time.sleep(0.5)
    assert (erda.data / "notes.txt").read_text() == "hi"
    ok, message = spawn(hub, "alice")
    assert ok, message
    read = contents(hub, "alice", "GET", "notes.txt")
    assert read.status_code == 200 and read.json()["content"] == "hi", read.text
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    assert secret.decode() not in hub.log()


def test_a_wrong_or_missing_credential_fails_the_spawn_or_warns(
    remote, erda, hub_factory, tmp_path
):
    known_hosts = tmp_path / "erda_known_hosts"
    known_hosts.write_text(erda.known_hosts_line())
    mount = tmp_path / "mnt"
    hub = hub_factory(erda_config(remote, erda, known_hosts, mount))

    login(hub, "alice", erda.username, "not-the-password")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "persistent home could not be mounted" in message, message
    assert f"refused the login of {erda.username!r}" in message, message
    assert remote.servers() == []  # the failed start left nothing running
    assert "not-the-password" not in hub.log()

    login(hub, "alice", erda.username, None)  # a login that forwarded no password
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "no credential for the storage service 127.0.0.1" in message, message
    assert "'erda_password' is missing" in message, message
    assert remote.servers() == []

    hub.stop()
    hub.config_file.write_text(
        hub.config_file.read_text() + "\nc.CloudSSHSpawner.persistent_home_optional = True\n"
    )
    hub.start()
    login(hub, "alice", erda.username, "not-the-password")
    events: list[str] = []
    ok, message = spawn(hub, "alice", events=events)
    assert ok, message
    warnings = [e for e in events if e.startswith("WARNING: your persistent home could not")]
    assert warnings and "refused the login" in warnings[0], events
    assert not is_mounted(remote, mount)
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)


def test_a_storage_service_with_another_host_key_gets_no_credential(
    remote, erda, hub_factory, tmp_path
):
    impostor = keygen(tmp_path / "impostor_key")
    known_hosts = tmp_path / "erda_known_hosts"
    known_hosts.write_text(erda.known_hosts_line(impostor))  # pinned: not the key it presents
    hub = hub_factory(erda_config(remote, erda, known_hosts, tmp_path / "mnt"))
    login(hub, "alice", erda.username, erda.password)
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "host key of the storage service 127.0.0.1" in message, message
    assert "refusing to send it your credentials" in message, message
    assert remote.servers() == []
    # The service saw no login attempt at all: the credential was never sent.
    assert "password" not in erda.log().lower(), erda.log()


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ({"port": 22}, "needs 'host'"),
        (
            {"host": "erda.example", "known_hosts": "/k", "password_key": "p", "user": "x"},
            "unknown",
        ),
        ({"host": "erda.example", "known_hosts": "k", "password_key": "p"}, "absolute path"),
        ({"host": "erda.example", "known_hosts": "/k"}, "exactly one of 'password_key'"),
        (
            {"host": "e", "known_hosts": "/k", "password_key": "p", "port": "22"},
            "must be an integer",
        ),
    ],
)
def test_a_bad_sftp_setting_is_refused_naming_the_key(setting, complaint):
    from traitlets import TraitError

    from cloudsshspawner import CloudSSHSpawner

    with pytest.raises(TraitError, match=r"CloudSSHSpawner\.persistent_home_sftp") as raised:
        CloudSSHSpawner(persistent_home_sftp=setting)
    assert complaint in str(raised.value)


def test_a_private_key_in_a_json_header_logs_in_to_the_service(remote, hub_factory, tmp_path):
    """The DAG/ERDA form: the front proxy forwards ``Mount: {"USERNAME", "PRIVATEKEY"}``."""
    key = keygen(tmp_path / "session_key")
    erda = ERDA(tmp_path / "erda-keys", password="unused-" + PASSWORD, client_key=key)
    erda.start()
    try:
        known_hosts = tmp_path / "erda_known_hosts"
        known_hosts.write_text(erda.known_hosts_line())
        setting = {
            "host": "127.0.0.1",
            "port": erda.port,
            "known_hosts": str(known_hosts),
            "username_key": "mount.USERNAME",
            "private_key_key": "mount.PRIVATEKEY",
        }
        hub = hub_factory(
            cloudssh_config(
                remote,
                f"""
from headerauthenticator import JSONParser
c.Authenticator.enable_auth_state = True
c.HeaderAuthenticator.allowed_headers = {{"auth": "Remote-User", "mount": "Mount"}}
c.HeaderAuthenticator.header_parser_classes = {{"mount": JSONParser}}
c.CloudSSHSpawner.persistent_home_sftp = {setting!r}
c.CloudSSHSpawner.persistent_home_mount = {str(tmp_path / "mnt")!r}
""",
            )
        )
        private = key.read_text()
        mount = json.dumps({"USERNAME": erda.username, "PRIVATEKEY": private})
        headers = {"Remote-User": "alice", "X-Gridhub-Secret": SECRET, "Mount": mount}
        assert httpx.get(f"{hub.url}/hub/login", headers=headers).status_code == 302
        ok, message = spawn(hub, "alice")
        assert ok, message + "\n" + hub.log()[-3000:]
        saved = contents(
            hub, "alice", "PUT", "k.txt", json={"type": "file", "format": "text", "content": "k"}
        )
        assert saved.status_code in (200, 201), saved.text
        assert (erda.data / "k.txt").read_text() == "k"
        assert f"Accepted publickey for {erda.username}" in erda.log()
        body = "".join(private.splitlines()[1:-1])[:40].encode()  # a piece of the key itself
        for pid in namespace_processes(remote):
            for name in ("cmdline", "environ"):
                with contextlib.suppress(OSError):
                    assert body not in Path(f"/proc/{pid}/{name}").read_bytes(), (pid, name)
        assert files_holding(remote.root, body) == []
        assert body.decode() not in hub.log()
        assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    finally:
        erda.stop()


def test_the_hub_does_not_start_with_a_bad_sftp_setting(remote, hub_factory, tmp_path):
    setting = {"host": "erda.example", "known_hosts": "relative/known_hosts", "password_key": "p"}
    hub = hub_factory(
        cloudssh_config(remote, f"c.CloudSSHSpawner.persistent_home_sftp = {setting!r}\n"),
        start=False,
    )
    with pytest.raises(RuntimeError, match="exited with 1 while starting"):
        hub.start()
    assert "CloudSSHSpawner configuration is invalid: persistent_home_sftp['known_hosts']" in (
        hub.log()
    )
