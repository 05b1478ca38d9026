"""``make stack-test``: the compose stack built and run for real on a confined Docker engine.

Not collected by ``make test`` (the file name does not match ``test_*.py``); ``make stack-test`` names
it. The session fixture makes the base image, builds every image, brings deploy/compose.yml up, and
tears everything down at the end. If the engine cannot start, the fixture fails with that reason.

The MODI path (thesis 4.2, appendix B.1): log in through the front proxy, ldap_hooks makes the
posixAccount, the hpc notebook runs with that uid and the shared home, and ``sbatch`` from the notebook
runs on a slurmd container as that user, writing to the user's home.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import websocket
import yaml

from tests.harness.docker import CACHE, DockerEngine
from tests.stack.stack import COMPOSE_FILE, REPO, Stack, version

WORKDIR = CACHE / "stack-test"
IMAGES = [
    "runtime",
    "python",
    "hub",
    "notebook-base",
    "notebook-hpc",
    "notebook-gpu",
    "slurm",
    "ldap",
    "proxy",
]
SECRET_WORDS = re.compile(r"(PASSWORD|SECRET|TOKEN|CRYPT|PRIVATE|_KEY\b|^KEY\b)", re.I)
# names of where a secret goes, not secrets: GRIDHUB_SECRET_HEADER, MUNGE_KEY_FILE
NAMES_A_PLACE = ("_HEADER", "_FILE", "_DIR")
# the MultipleSpawner offer of deploy/jupyterhub_config.py: the hpc image in a container
CHOICE = {"provider": "cluster", "resource_type": "container", "deployment": "hpc"}


def looks_secret(name: str) -> bool:
    return bool(SECRET_WORDS.search(name)) and not name.upper().endswith(NAMES_A_PLACE)


TIMINGS = CACHE / "stack-test-times.log"


def timing(line: str) -> None:
    """One phase's time, for scripts/stack-test.sh to print at the end (pytest keeps stderr)."""
    load = Path("/proc/loadavg").read_text().split()[0]
    with open(TIMINGS, "a") as out:
        out.write(f"{line} (load {load})\n")


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    # The data root persists in build/docker/ (git-ignored) so a second run reuses the images.
    eng = DockerEngine(WORKDIR, data_root=WORKDIR / "root")
    TIMINGS.unlink(missing_ok=True)
    eng.start()  # raises EngineUnavailable with the reason when the engine cannot run here
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture(scope="session")
def stack(engine: DockerEngine) -> Iterator[Stack]:
    started = time.monotonic()
    st = Stack(engine, f"ghtest{secrets.token_hex(3)}")
    st.build_images()
    built = time.monotonic()
    st.write_env(
        {
            "GRIDHUB_NETWORK": f"{st.project}-net",
            "GRIDHUB_HOME_VOLUME": f"{st.project}-home",
            "GRIDHUB_MUNGE_VOLUME": f"{st.project}-munge",
        }
    )
    try:
        st.up()
        timing(f"images built in {built - started:.0f} s (per image: {CACHE}/build-times.log)")
        timing(f"stack up and healthy in {time.monotonic() - built:.0f} s")
        yield st
    except BaseException:
        print(st.logs(80), file=sys.stderr)
        raise
    finally:
        # notebooks are the hub's containers, not compose's: remove them before the network
        for info in engine_containers(engine, "gridhub-notebook-"):
            engine.docker("rm", "-f", info, check=False)
        st.down(volumes=True)


def engine_containers(engine: DockerEngine, prefix: str) -> list[str]:
    names = engine.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    return [name for name in names if name.startswith(prefix)]


class Person:
    """Someone using the stack through the front proxy with a browser-like session."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.name = name
        self.url = stack.url
        self.password = secrets.token_urlsafe(12)
        stack.add_front_user(name, self.password)
        self.client = httpx.Client(
            base_url=stack.url, auth=(name, self.password), follow_redirects=True, timeout=60
        )

    def login(self) -> httpx.Response:
        return self.client.get("/hub/login")

    def spawn(self, how: str, timeout: float = 240) -> None:
        """Start the default server through the MultipleSpawner, by its spawn page (``how="form"``)
        or by REST ``user_options`` (``how="rest"``), then open JupyterLab (OAuth with the hub)."""
        if how == "form":
            page = self.client.get("/hub/spawn")
            assert page.status_code == 200, page.text[-500:]
            assert 'name="deployment"' in page.text and "This cluster" in page.text, page.text
            action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
            fields = {**CHOICE, "cpu": "1", "memory_gb": "1", "gpus": "0", "minutes": "60"}
            posted = self.client.post(action, data=fields, follow_redirects=False)
            assert posted.status_code == 302, (posted.status_code, posted.text[-500:])
        else:
            xsrf = {"X-XSRFToken": self.client.cookies.get("_xsrf", path="/hub/")}
            api = f"/hub/api/users/{self.name}/server"
            # an image or deployment the admin did not offer is refused before anything starts
            forged = self.client.post(
                api, json={**CHOICE, "deployment": "evil/miner"}, headers=xsrf
            )
            assert forged.status_code == 400, forged.text
            started = self.client.post(api, json={**CHOICE, "cpu": 1, "memory_gb": 1}, headers=xsrf)
            assert started.status_code in (201, 202), started.text
        deadline = time.monotonic() + timeout
        page = None
        while time.monotonic() < deadline:
            page = self.client.get(f"/user/{self.name}/lab")
            if page.status_code == 200 and page.url.path == f"/user/{self.name}/lab":
                return
            time.sleep(2)
        raise AssertionError(
            f"{self.name}'s notebook did not start: {page and (page.status_code, page.url)}"
        )

    def file(self, path: str) -> httpx.Response:
        """A file in the user's notebook, through the Jupyter contents API."""
        return self.client.get(f"/user/{self.name}/api/contents/{path}", params={"content": "1"})

    def terminal(self, command: str, until: str, timeout: float = 180) -> str:
        """Type ``command`` into a new JupyterLab terminal; the output up to the ``until`` pattern."""
        xsrf = self.client.cookies.get("_xsrf", path=f"/user/{self.name}/")
        made = self.client.post(f"/user/{self.name}/api/terminals", headers={"X-XSRFToken": xsrf})
        assert made.status_code == 200, made.text
        term = made.json()["name"]
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.client.cookies.jar)
        auth = base64.b64encode(f"{self.name}:{self.password}".encode()).decode()
        ws = websocket.create_connection(
            f"{self.url.replace('http', 'ws', 1)}/user/{self.name}/terminals/websocket/{term}",
            header=[f"Authorization: Basic {auth}"],
            cookie=cookies,
            timeout=timeout,
        )
        output = ""
        try:
            ws.send(json.dumps(["stdin", command + "\r"]))
            deadline = time.monotonic() + timeout
            while not re.search(until, output) and time.monotonic() < deadline:
                message = json.loads(ws.recv())
                if message[0] == "stdout":
                    output += message[1]
        finally:
            ws.close()
            self.client.delete(
                f"/user/{self.name}/api/terminals/{term}", headers={"X-XSRFToken": xsrf}
            )
        assert re.search(until, output), output[-2000:]
        return output


def notebook(stack: Stack, person: Person) -> str:
    return f"gridhub-notebook-{person.name}--"


def ldap_account(stack: Stack, uid: str) -> dict[str, str]:
    out = stack.exec(
        stack.container("openldap"),
        f"ldapsearch -x -LLL -H ldap://127.0.0.1 -b dc=migrid,dc=org '(uid={uid})' "
        "uidNumber gidNumber homeDirectory objectClass",
    ).stdout
    entry: dict[str, str] = {}
    for line in out.splitlines():
        if ": " in line:
            key, value = line.split(": ", 1)
            entry[key] = entry.get(key, "") + ("," if key in entry else "") + value
    return entry


def submit(stack: Stack, person: Person, name: str) -> tuple[str, str]:
    """``sbatch --wait`` typed into the person's JupyterLab terminal, in their home directory."""
    out = person.terminal(
        f"cd ~ && echo JOB=$(sbatch --parsable --wait -J {name} -o ~/{name}-%j.out "
        "--wrap 'echo uid=$(id -u) user=$(id -un) host=$(hostname); "
        f"echo from-{name} > ~/{name}.result; ls -ln ~/{name}.result') "
        "TERMUID=$(id -u)",
        until=r"JOB=\d+ TERMUID=\d+",
    )
    job, term_uid = re.search(r"JOB=(\d+) TERMUID=(\d+)", out).groups()
    result = person.file(f"{name}-{job}.out")
    assert result.status_code == 200, result.text
    return job, f"terminal uid={term_uid}\n" + result.json()["content"]


# ----------------------------------------------------------------------------- static checks


def test_compose_file_validates_against_the_compose_spec():
    schema = subprocess.run(
        [str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema",
         "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert schema.returncode == 0, schema.stdout + schema.stderr
    # and the runner that uses it agrees (docker-compose 1.29's own schema, offline)
    env_file = REPO / "deploy" / ".env.example"
    runner = subprocess.run(
        ["/usr/bin/docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file),
         "config", "-q"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert runner.returncode == 0, runner.stderr


def test_compose_file_commits_no_secret_and_restarts_daemons():
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in spec["services"].items():
        for key in service.get("environment") or {}:
            if looks_secret(key):
                pytest.fail(f"{name} sets {key} in the compose file")
        if name != "secrets":
            assert service["restart"] == "unless-stopped", name
            assert "healthcheck" in service or name == "secrets", name
            assert service.get("init") is True, name
        assert not service.get("privileged"), name
        assert not service.get("cap_add"), name
    example = (REPO / "deploy" / ".env.example").read_text()
    used = set(re.findall(r"\$\{(GRIDHUB_[A-Z_]+)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"^#?\s*(GRIDHUB_[A-Z_]+)=", example, re.M))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def dockerfiles() -> list[Path]:
    return sorted((REPO / "docker").rglob("Dockerfile"))


def test_dockerfiles_pass_hadolint_and_our_rules():
    hadolint = Path(sys.executable).with_name("hadolint")
    files = dockerfiles()
    assert len(files) == len(IMAGES)
    done = subprocess.run(
        [str(hadolint), "--failure-threshold", "warning", *map(str, files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for path in files:
        text = path.read_text()
        assert re.search(r"^USER\s+\S+", text, re.M), f"{path}: no USER"
        assert ":latest" not in text, f"{path}: a latest tag"
        for word, name in re.findall(r"^(ARG|ENV)\s+([A-Za-z_]+)", text, re.M):
            assert not looks_secret(name), f"{path}: {word} {name} looks like a secret"


# ----------------------------------------------------------------------------- the running stack


def test_images_carry_no_secret(stack: Stack):
    def secret_files(tag: str) -> list[str]:
        return stack.engine.docker(
            "run", "--rm", "--network", "none", "--user", "root", "--entrypoint", "bash", tag,
            "-c", "find / -xdev \\( -name munge.key -o -name 'ssh_host_*_key' -o -name '*.sqlite' "
            "-o -name 'jupyterhub_cookie_secret' \\) 2>/dev/null",
        ).stdout.split()  # fmt: skip

    tags = [f"gridhub/{name}:{version()}" for name in IMAGES]
    with ThreadPoolExecutor(max_workers=len(tags)) as pool:
        found = dict(zip(tags, pool.map(secret_files, tags), strict=True))
    for tag in tags:
        info = json.loads(stack.engine.docker("image", "inspect", tag).stdout)[0]
        for item in info["Config"].get("Env") or []:
            assert not looks_secret(item.split("=", 1)[0]), f"{tag}: ENV {item}"
        history = stack.engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
        assert not re.search(r"(PASSWORD|SECRET|TOKEN)=\S", history.stdout), tag
        assert found[tag] == [], f"{tag} contains {found[tag]}"
    # the generated secrets exist, in their volumes only, readable by root only
    modes = stack.exec(
        stack.container("openldap"), "stat -c '%a %U' /run/gridhub/secrets/ldap/admin_password"
    ).stdout.split()
    assert modes == ["600", "root"]


def test_front_proxy_is_the_only_way_in(stack: Stack):
    # no login at the front proxy: refused
    assert httpx.get(f"{stack.url}/hub/login").status_code == 401
    # straight to the hub from inside the network, headers forged, no secret: refused
    forged = stack.exec(
        stack.container("proxy"),
        "python3 - <<'EOF'\n"
        "import urllib.request, urllib.error\n"
        "req = urllib.request.Request('http://hub:8000/hub/login', headers={'Remote-User': 'mallory'})\n"
        "try:\n    print(urllib.request.urlopen(req).status)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\nEOF",
    ).stdout.strip()
    assert forged == "403"


def test_modi_path_end_to_end(stack: Stack):
    alice = Person(stack, "alice")
    # a forged Remote-User from the client is replaced by the front proxy's own
    page = alice.client.get("/hub/login", headers={"Remote-User": "bob"})
    assert page.status_code == 200, page.text[:400]
    assert alice.client.get("/hub/api/user").json()["name"] == "alice"

    alice.spawn(how="form")
    account = ldap_account(stack, "alice")
    assert "posixAccount" in account["objectClass"]
    uid = int(account["uidNumber"])
    assert uid >= 10000
    assert account["homeDirectory"] == "/home/alice"

    box = notebook(stack, alice)
    # MultipleSpawner's container child made it: the offered image with the chosen CPU and memory
    (info,) = json.loads(stack.engine.docker("inspect", box).stdout)
    assert info["Config"]["Image"] == f"gridhub/notebook-hpc:{version()}"
    assert (info["HostConfig"]["CpuQuota"], info["HostConfig"]["CpuPeriod"]) == (100_000, 100_000)
    assert info["HostConfig"]["Memory"] == 1024**3
    # the notebook server runs as alice's uid from LDAP, in the shared home
    ps = stack.exec(box, "ps -eo uid=,args= | grep '[j]upyterhub-singleuser'").stdout
    assert ps.split()[0] == str(uid), ps
    assert stack.exec(box, "getent passwd alice").stdout.split(":")[2] == str(uid)
    assert stack.exec(box, "stat -c '%u %a' /home/alice").stdout.split() == [str(uid), "700"]

    job, out = submit(stack, alice, "hello")
    assert f"terminal uid={uid}" in out, out  # the JupyterLab terminal runs as alice
    assert f"uid={uid} user=alice" in out, out  # and so does the job, on a node
    node = re.search(r"host=(\S+)", out).group(1)
    nodes = stack.exec(stack.container("slurmctld"), "sinfo -h -N -o %N").stdout.split()
    assert node in nodes, (node, nodes)
    assert node != stack.exec(box, "hostname").stdout.strip()
    assert f"{uid} 100" in out  # ls -ln: the result file belongs to alice
    # the notebook sees the job's output in alice's home (Jupyter contents API, as alice's server)
    result = alice.file("hello.result")
    assert result.status_code == 200 and result.json()["content"].strip() == "from-hello"
    owner = stack.exec(stack.container("slurmctld"), f"scontrol show job {job}").stdout
    assert f"UserId=alice({uid})" in owner

    # a second user: their own uid, and no way into alice's home
    bob = Person(stack, "bob")
    assert bob.login().status_code == 200
    bob.spawn(how="rest")
    bob_uid = int(ldap_account(stack, "bob")["uidNumber"])
    assert bob_uid != uid
    denied = stack.exec(
        notebook(stack, bob), "cat /home/alice/hello.result", user=f"{bob_uid}:100", check=False
    )
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert bob.file("../alice/hello.result").status_code in (403, 404)
    bob_job, bob_out = submit(stack, bob, "second")
    assert f"uid={bob_uid} user=bob" in bob_out
    assert f"terminal uid={bob_uid}" in bob_out

    # job accounting (slurmdbd): each job under its owner; records reach slurmdbd within seconds
    deadline = time.monotonic() + 60
    while True:
        owners = stack.exec(
            stack.container("slurmctld"), "sacct -a -X -n -P -o JobID,User,State -S now-2hours"
        ).stdout.split()
        if {f"{job}|alice|COMPLETED", f"{bob_job}|bob|COMPLETED"} <= set(owners):
            break
        assert time.monotonic() < deadline, owners
        time.sleep(2)

    # the front proxy's secret never reaches the hub's log
    secret = stack.exec(stack.container("proxy"), "cat /run/gridhub/secrets/proxy/header_secret")
    assert secret.stdout.strip()
    hub_log = stack.engine.docker("logs", stack.container("hub"))
    assert secret.stdout.strip() not in hub_log.stdout + hub_log.stderr


def test_slurm_nodes_scale(stack: Stack):
    stack.compose("up", "-d", "--no-recreate", "--scale", "slurmd=3")
    stack.wait_healthy(180)
    nodes = stack.exec(stack.container("slurmctld"), "sinfo -h -N -o '%N %T'").stdout.split("\n")
    idle = [line for line in nodes if line.split()[-1:] in (["idle"], ["mixed"])]
    assert len(idle) >= 3, nodes
