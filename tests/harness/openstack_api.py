"""A small OpenStack cloud on loopback: Keystone v3, Nova (compute 2.1) and Glance v2, over HTTP.

Only what libcloud's OpenStack driver calls for corc is implemented, with OpenStack's own JSON:

- ``POST /identity/v3/auth/tokens`` checks the password and project, answers 201 with an
  ``X-Subject-Token`` and a service catalog; every other call needs a valid ``X-Auth-Token``.
- ``/compute/v2.1``: flavors, servers (metadata and user data stored as sent, ``BUILD`` then
  ``ACTIVE`` on a later read, ``DELETE`` removes), key pairs, and ``os-getConsoleOutput``, which
  prints the host keys as cloud-init does (the ``ssh_keys`` from the user data, else a key of its own).
- ``/image/v2/images``.

Usage: python openstack_api.py PORT STATE_JSON (STATE_JSON records every call and object).
"""

from __future__ import annotations

import base64
import copy
import http.server
import json
import os
import sys
import threading
import uuid
from urllib.parse import parse_qs, urlparse

import yaml

USER, PASSWORD, PROJECT = "demo", "secret-password", "gridhub"
REGION = "RegionOne"
FLAVORS = [
    {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
    {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
    {"id": "3", "name": "m1.medium", "ram": 4096, "vcpus": 2, "disk": 40},
    {"id": "4", "name": "m1.large", "ram": 8192, "vcpus": 4, "disk": 80},
    {"id": "5", "name": "g1.large", "ram": 16384, "vcpus": 4, "disk": 80},  # 1 GPU (extra spec)
]
GPUS = {"5": 1}
ZONES = ["nova", "zone-b"]
IMAGES = [
    {"id": "a1b2c3d4-0000-4000-8000-000000000001", "name": "ubuntu-22.04"},
    {"id": "a1b2c3d4-0000-4000-8000-000000000002", "name": "cirros-0.6"},
]


def _own_host_key() -> str:
    """A host key as cloud-init would generate one when the user data brings none."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line.decode()


OWN_HOST_KEY = _own_host_key()


class State:
    """Servers, key pairs, tokens and the call log, saved to a JSON file after every call."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict = {"servers": {}, "keypairs": {}, "tokens": [], "calls": []}

    def save(self) -> None:
        with open(self.path + ".tmp", "w") as out:
            json.dump(self.data, out)
        os.replace(self.path + ".tmp", self.path)


def _console(server: dict) -> str:
    """Console output as cloud-init prints it, with the host keys the server ended up with."""
    keys = [OWN_HOST_KEY]
    user_data = server.get("_user_data")
    if user_data:
        try:
            config = yaml.safe_load(base64.b64decode(user_data)) or {}
        except (ValueError, yaml.YAMLError):
            config = {}
        installed = [
            value.strip()
            for name, value in (config.get("ssh_keys") or {}).items()
            if name.endswith("_public")
        ]
        keys = installed or keys
    lines = "\n".join(f"{key} root@{server['name']}" for key in keys)
    return (
        "[    0.000000] Linux version 6.1.0 (fake nova)\n"
        f"ci-info: no authorized SSH keys fingerprints found for user ubuntu.\n"
        "-----BEGIN SSH HOST KEY KEYS-----\n"
        f"{lines}\n"
        "-----END SSH HOST KEY KEYS-----\n"
        "Cloud-init v. 23.1 finished\n"
    )


class Handler(http.server.BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("openstack-api: " + fmt % args + "\n")

    def _send(self, status: int, body: object = None, headers: dict | None = None) -> None:
        # Saved before the answer leaves: a client that reads the state file after a reply (a test
        # checking that a DELETE took) must see that call's effect.
        self.state.save()
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._send(status, {kind: {"code": status, "message": message}})

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self._body()
        with self.state.lock:
            self.state.data["calls"].append(f"{method} {url.path}")
            try:
                self._route(method, url.path, query, body)
            finally:
                self.state.save()

    def _route(self, method: str, path: str, query: dict, body: dict) -> None:
        if path == "/identity/v3/auth/tokens" and method == "POST":
            return self._token(body)
        if self.headers.get("X-Auth-Token") not in self.state.data["tokens"]:
            return self._error(
                401, "unauthorized", "The request you have made requires authentication."
            )
        if path.startswith("/compute/v2.1/"):
            return self._compute(method, path.removeprefix("/compute/v2.1/").split("/"), body)
        if path.startswith("/image/v2/images"):
            rest = path.removeprefix("/image/v2/images").strip("/")
            images = [_image(i) for i in IMAGES]
            if not rest:
                return self._send(200, {"images": images})
            for image in images:
                if image["id"] == rest:
                    return self._send(200, image)
            return self._error(404, "itemNotFound", f"image {rest} not found")
        return self._error(404, "itemNotFound", f"no such endpoint {path}")

    def _token(self, body: dict) -> None:
        auth = body.get("auth", {})
        user = auth.get("identity", {}).get("password", {}).get("user", {})
        project = auth.get("scope", {}).get("project", {})
        if (user.get("name"), user.get("password")) != (USER, PASSWORD):
            return self._error(401, "error", "The request you have made requires authentication.")
        if project.get("name") != PROJECT:
            return self._error(401, "error", f"no project {project.get('name')!r}")
        token = uuid.uuid4().hex
        self.state.data["tokens"].append(token)
        port = self.server.server_address[1]
        base = f"http://127.0.0.1:{port}"
        catalog = [
            {
                "type": kind,
                "name": name,
                "endpoints": [{"interface": "public", "region": REGION, "url": base + url}],
            }
            for kind, name, url in (
                ("compute", "nova", "/compute/v2.1"),
                ("image", "glance", "/image"),
                ("identity", "keystone", "/identity/v3"),
            )
        ]
        self._send(
            201,
            {
                "token": {
                    "expires_at": "2099-01-01T00:00:00.000000Z",
                    "issued_at": "2026-01-01T00:00:00.000000Z",
                    "methods": ["password"],
                    "user": {"id": "u1", "name": USER, "domain": {"id": "default"}},
                    "project": {"id": "p1", "name": PROJECT, "domain": {"id": "default"}},
                    "roles": [{"id": "r1", "name": "member"}],
                    "catalog": catalog,
                }
            },
            {"X-Subject-Token": token},
        )

    def _compute(self, method: str, parts: list[str], body: dict) -> None:
        data = self.state.data
        if parts == ["flavors", "detail"]:
            flavors = [
                dict(
                    f,
                    swap="",
                    **{"OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1.0},
                    extra_specs=(
                        {"pci_passthrough:alias": f"gpu:{GPUS[f['id']]}"} if f["id"] in GPUS else {}
                    ),
                )
                for f in FLAVORS
            ]
            return self._send(200, {"flavors": flavors})
        if parts[0] == "flavors" and parts[2:] == ["os-extra_specs"]:
            if parts[1] not in {f["id"] for f in FLAVORS}:
                return self._error(404, "itemNotFound", f"Flavor {parts[1]} could not be found.")
            specs = {"pci_passthrough:alias": f"gpu:{GPUS[parts[1]]}"} if parts[1] in GPUS else {}
            return self._send(200, {"extra_specs": specs})
        if parts == ["os-availability-zone"]:
            zones = [
                {"zoneName": z, "zoneState": {"available": True}, "hosts": None} for z in ZONES
            ]
            return self._send(200, {"availabilityZoneInfo": zones})
        if parts[0] == "os-keypairs":
            if method == "GET":
                pairs = [{"keypair": p} for p in data["keypairs"].values()]
                return self._send(200, {"keypairs": pairs})
            pair = body["keypair"]
            data["keypairs"][pair["name"]] = {
                "name": pair["name"],
                "public_key": pair.get("public_key", ""),
                "fingerprint": "00:11",
            }
            return self._send(200, {"keypair": data["keypairs"][pair["name"]]})
        if parts[0] != "servers":
            return self._error(404, "itemNotFound", "/".join(parts))
        servers = data["servers"]
        if method == "POST" and len(parts) == 1:
            return self._create(body["server"])
        if method == "GET" and parts[1:] == ["detail"]:
            shown = [self._show(s) for s in servers.values() if not s["_deleted"]]
            return self._send(200, {"servers": shown})
        server = servers.get(parts[1]) if len(parts) > 1 else None
        if server is None or server["_deleted"]:
            return self._error(404, "itemNotFound", f"Instance {parts[1:2]} could not be found.")
        if method == "GET":
            return self._send(200, {"server": self._show(server)})
        if method == "DELETE":
            server["_deleted"] = True
            return self._send(204)
        if method == "POST" and parts[2:] == ["action"] and "os-getConsoleOutput" in body:
            return self._send(
                200, {"output": _console(server) if server["status"] == "ACTIVE" else ""}
            )
        return self._error(400, "badRequest", "unsupported action")

    def _create(self, request: dict) -> None:
        flavor = request.get("flavorRef")
        image = request.get("imageRef")
        if flavor not in {f["id"] for f in FLAVORS}:
            return self._error(400, "badRequest", f"Flavor {flavor} could not be found.")
        if image not in {i["id"] for i in IMAGES}:
            return self._error(400, "badRequest", f"Image {image} could not be found.")
        zone = request.get("availability_zone") or "nova"
        if zone not in ZONES:
            return self._error(
                400, "badRequest", f"The requested availability zone {zone} is not available"
            )
        metadata = request.get("metadata") or {}
        if not all(isinstance(v, str) and len(v) <= 255 for v in metadata.values()):
            return self._error(400, "badRequest", "metadata values must be strings of at most 255")
        number = len(self.state.data["servers"]) + 1
        server = {
            "id": str(uuid.uuid4()),
            "name": request["name"],
            "status": "BUILD",
            "flavor": {"id": flavor, "links": []},
            "image": {"id": image, "links": []},
            "metadata": metadata,
            "key_name": request.get("key_name"),
            "OS-EXT-AZ:availability_zone": zone,
            "tenant_id": "p1",
            "user_id": "u1",
            "hostId": "",
            "created": "2026-01-01T00:00:00Z",
            "updated": "2026-01-01T00:00:00Z",
            "accessIPv4": "",
            "accessIPv6": "",
            "addresses": {
                "private": [
                    {"addr": f"10.0.0.{number + 10}", "version": 4, "OS-EXT-IPS:type": "fixed"},
                    # TEST-NET-2: documentation only, never contacted
                    {
                        "addr": f"198.51.100.{number + 10}",
                        "version": 4,
                        "OS-EXT-IPS:type": "floating",
                    },
                ]
            },
            "_user_data": request.get("user_data"),
            "_deleted": False,
            "_reads": 0,
        }
        self.state.data["servers"][server["id"]] = server
        self._send(202, {"server": {"id": server["id"], "links": [], "adminPass": "x"}})

    @staticmethod
    def _show(server: dict) -> dict:
        shown = copy.deepcopy({k: v for k, v in server.items() if not k.startswith("_")})
        shown["links"] = [{"rel": "self", "href": f"/compute/v2.1/servers/{server['id']}"}]
        server["_reads"] += 1
        if server["status"] == "BUILD" and server["_reads"] > 2:
            server["status"] = "ACTIVE"  # booted after a couple of reads
        return shown


def _image(image: dict) -> dict:
    return {
        **image,
        "status": "active",
        "visibility": "public",
        "min_disk": 0,
        "min_ram": 0,
        "size": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "owner": "p1",
        "tags": [],
    }


if __name__ == "__main__":
    port, state_file = sys.argv[1], sys.argv[2]
    Handler.state = State(state_file)
    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
