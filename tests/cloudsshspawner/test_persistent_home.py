"""Persistent homes: the user's files live on the hub side and follow them from host to host."""

from __future__ import annotations

import shlex
import subprocess
import time
import zipfile
from pathlib import Path

import httpx

from cloudsshspawner.home import prepare_server
from tests.cloudsshspawner.conftest import Remote, cloudssh_config, login, status
from tests.cloudsshspawner.test_spawn import cut_ssh_connections, notebook_pid
from tests.harness.hub import spawn
from tests.harness.sshd import host_with_key


def ssh(remote: Remote, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a login session on the host: in its sshd's mount namespace, where the
    notebook and its mount live (``host.run`` gets a fresh namespace that does not see them)."""
    argv = ["ssh", "-i", str(remote.key), "-p", str(remote.host.port), "-o", "BatchMode=yes"]
    argv += ["-o", f"UserKnownHostsFile={remote.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    argv += [f"root@{remote.host.address}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=check)


def home_config(remote: Remote, homes: Path, mount: Path, extra: str = "") -> str:
    return cloudssh_config(
        remote,
        f"""
c.CloudSSHSpawner.persistent_home_root = {str(homes)!r}
c.CloudSSHSpawner.persistent_home_mount = {str(mount)!r}
{extra}""",
    )


def contents(hub, user: str, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(
        method,
        f"{hub.url}/user/{user}/api/contents/{path}",
        headers={"Authorization": f"token {hub.api_token}"},
        timeout=60,
        **kwargs,
    )


def tiny_wheel(directory: Path) -> Path:
    wheel = directory / "tinyhome-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tinyhome.py", "ANSWER = 42\n")
        info = "tinyhome-0.1.dist-info"
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: tinyhome\nVersion: 0.1\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def is_mounted(remote: Remote, mount: Path) -> bool:
    found = ssh(remote, f"stat -f -c %T {shlex.quote(str(mount))}", check=False).stdout
    return found.strip().startswith("fuse")


def test_files_survive_stop_and_follow_the_user_to_another_host(remote, hub_factory, tmp_path):
    homes, mount = tmp_path / "homes", tmp_path / "mnt"
    hub = hub_factory(home_config(remote, homes, mount))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert ok, message
    assert status(hub, "alice").status_code == 200

    # The notebook saves through its contents API: the file lands in the hub-side home.
    saved = contents(
        hub, "alice", "PUT", "notes.txt", json={"type": "file", "format": "text", "content": "hi"}
    )
    assert saved.status_code in (200, 201), saved.text
    assert (homes / "alice" / "notes.txt").read_text() == "hi"
    assert (homes / "alice").stat().st_mode & 0o777 == 0o700
    assert not (mount / "notes.txt").exists()  # nothing on the host's own disk

    # Git and pip work in the mounted home (locks, renames, permissions).
    home = shlex.quote(str(mount))
    wheel = tiny_wheel(tmp_path)
    ssh(
        remote,
        f"export HOME={home} && cd {home} && git init -q repo && cd repo && echo x > f"
        " && git add f && git -c user.name=a -c user.email=a@example.org commit -qm first"
        " && git log --oneline | grep -q first",
    )
    ssh(
        remote,
        f"export HOME={home} && /usr/bin/python3 -m pip install -q --user --no-index --no-deps"
        f" --break-system-packages {shlex.quote(str(wheel))}"
        " && cd / && /usr/bin/python3 -c 'import tinyhome; assert tinyhome.ANSWER == 42'",
    )
    assert (homes / "alice" / "repo" / ".git" / "HEAD").exists()
    assert list((homes / "alice" / ".local" / "lib").glob("python3*/site-packages/tinyhome.py"))

    # Only the mounting user reaches the mount; no credential for it exists on the host.
    other = ssh(remote, f"setpriv --reuid=65534 --regid=65534 --clear-groups ls {home}", False)
    assert other.returncode != 0 and "Permission denied" in other.stderr, other
    sshfs = ssh(remote, "ps -o args= -C sshfs").stdout
    assert "passive" in sshfs and "IdentityFile" not in sshfs and "password" not in sshfs

    # Stop: the mount is gone, the files stay on the hub side.
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while is_mounted(remote, mount):
        assert time.monotonic() < deadline, "the home is still mounted after stop"
        time.sleep(0.5)
    assert (homes / "alice" / "notes.txt").read_text() == "hi"

    # Spawn again on a different host: every file is there.
    (tmp_path / "second").mkdir()
    other_host = Remote(*host_with_key(tmp_path / "second"), tmp_path / "second-servers")
    try:
        hub.stop()
        hub.config_file.write_text(
            hub.config_file.read_text()
            .replace(
                f"{remote.host.address}:{remote.host.port}",
                f"{other_host.host.address}:{other_host.host.port}",
            )
            .replace(str(remote.key), str(other_host.key))
            .replace(str(remote.known_hosts), str(other_host.known_hosts))
        )
        hub.start()
        events: list[str] = []
        ok, message = spawn(hub, "alice", events=events)
        assert ok, message
        assert any(other_host.host.address in event for event in events), events
        read = contents(hub, "alice", "GET", "notes.txt")
        assert read.status_code == 200 and read.json()["content"] == "hi", read.text
        listing = {item["name"] for item in contents(hub, "alice", "GET", "").json()["content"]}
        assert {"notes.txt", "repo"} <= listing
        assert is_mounted(other_host, mount)
        assert hub.api().delete("/users/alice/server").status_code in (202, 204)
    finally:
        other_host.host.stop()


def sftp(argv: list[str], commands: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """OpenSSH's sftp client talking straight to the sandboxed server (what a hostile host could
    send through sshfs's channel)."""
    return subprocess.run(
        ["sftp", "-b", "-", "-D", " ".join(argv)],
        input=commands,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_one_user_cannot_reach_another_users_files(tmp_path):
    homes = tmp_path / "homes"
    prepare_server(str(homes), "bob")
    (homes / "bob" / "secret").write_text("bob's secret")
    alice = prepare_server(str(homes), "alice")
    # Links planted in alice's home (from an earlier session, or made through SFTP itself).
    (homes / "alice" / "abs").symlink_to(homes / "bob" / "secret")
    (homes / "alice" / "rel").symlink_to("../bob/secret")
    (homes / "alice" / "up").symlink_to("../..")
    out = tmp_path / "out"
    out.mkdir()
    attempts = [
        "../bob/secret",
        str(homes / "bob" / "secret"),
        "/../../bob/secret",
        "abs",
        "rel",
        "up/bob/secret",
        "/etc/shadow",
    ]
    commands = "".join(f"-get {path} got{i}\n" for i, path in enumerate(attempts))
    commands += f"-symlink {homes / 'bob' / 'secret'} made\n-get made gotmade\n"
    commands += "-ls -a /\n"
    result = sftp(alice, commands, out)
    assert not any(out.iterdir()), (list(out.iterdir()), result.stdout, result.stderr)
    # The root of alice's view holds nothing of the hub's file system.
    listed = {Path(name).name for name in result.stdout.split("sftp> -ls -a /", 1)[1].split()}
    assert "home" in listed and not {"tmp", "root", "work", "var", "bob", "secret"} & listed, listed
    # Her own files stay reachable.
    (homes / "alice" / "mine").write_text("ok")
    assert sftp(alice, "get mine\n", out).returncode == 0
    assert (out / "mine").read_text() == "ok"
    for name in ("..", ".", "a/b", ""):
        try:
            prepare_server(str(homes), name)
        except RuntimeError as error:
            assert "cannot name a home directory" in str(error)
        else:
            raise AssertionError(f"{name!r} was accepted as a user name")


def test_mount_failure_fails_the_spawn_or_warns_when_allowed(remote, hub_factory, tmp_path):
    homes = tmp_path / "homes"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    hub = hub_factory(home_config(remote, homes, blocker / "mnt"))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert not ok
    assert "persistent home could not be mounted" in message, message
    assert "Not a directory" in message, message
    assert remote.servers() == []  # the failed start left nothing running

    hub.stop()
    hub.config_file.write_text(
        hub.config_file.read_text() + "\nc.CloudSSHSpawner.persistent_home_optional = True\n"
    )
    hub.start()
    events: list[str] = []
    ok, message = spawn(hub, "alice", events=events)
    assert ok, message
    assert any(e.startswith("WARNING: your persistent home could not be mounted") for e in events)
    environ = Path(f"/proc/{notebook_pid(remote)}/environ").read_text()
    assert "GRIDHUB_EPHEMERAL_HOME=your persistent home could not be mounted" in environ
    assert hub.api().delete("/users/alice/server").status_code in (202, 204)


def test_home_is_remounted_after_a_dropped_connection_and_survives_a_crash(
    remote, hub_factory, tmp_path
):
    homes, mount = tmp_path / "homes", tmp_path / "mnt"
    hub = hub_factory(home_config(remote, homes, mount))
    login(hub, "alice")
    ok, message = spawn(hub, "alice")
    assert ok, message
    text = {"type": "file", "format": "text"}
    assert contents(hub, "alice", "PUT", "a.txt", json={**text, "content": "a"}).is_success

    # Drop the SSH connection (its sshd processes die): sshfs ends with it, and the spawner
    # mounts the home again once the tunnel is back.
    mounted = "Mounted alice's persistent home"
    assert hub.log().count(mounted) == 1
    cut_ssh_connections(remote)
    deadline = time.monotonic() + 90
    while hub.log().count(mounted) < 2:
        assert time.monotonic() < deadline, "the home was not mounted again after the reconnect"
        time.sleep(0.5)
    assert is_mounted(remote, mount)
    assert status(hub, "alice").status_code == 200
    saved = contents(hub, "alice", "PUT", "b.txt", json={**text, "content": "b"})
    assert saved.is_success, saved.text
    assert (homes / "alice" / "b.txt").read_text() == "b"

    # The host crashes: everything saved is on the hub side, and the hub-side server ends.
    remote.host.stop()
    assert (homes / "alice" / "a.txt").read_text() == "a"
    assert (homes / "alice" / "b.txt").read_text() == "b"
    marker = str(homes / "alice").encode()
    deadline = time.monotonic() + 60
    while servers := [p for p in Path("/proc").iterdir() if p.name.isdigit() and _has(p, marker)]:
        assert time.monotonic() < deadline, f"hub-side sftp servers left running: {servers}"
        time.sleep(0.5)


def _has(process: Path, marker: bytes) -> bool:
    try:
        return marker in (process / "cmdline").read_bytes()
    except OSError:
        return False
