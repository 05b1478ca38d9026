"""A local OCI API server implementing the endpoints corc's OCI provider calls.

OCI cannot be reached from here and has no emulator; this server lets the real oci SDK run end to end:
every request's RSA signature is verified against the test user's public key (as OCI does), list calls
are paginated with ``opc-next-page`` (2 items a page), and instances move from PROVISIONING to RUNNING
and from TERMINATING to TERMINATED on later reads, so the SDK's waiters have work to do.

Console histories (capture, get, content, delete) print cloud-init's SSH host key block, so the
provider can pin the host key. Faults and addresses are set, without a signature, by
``POST /_control`` with a JSON object (see ``Control``): a slow launch (the instance exists while
the answer is delayed), "not found" for the first reads of a new instance (eventual consistency),
failing terminations, the public IP and host key of new instances, the key the console prints.

Usage: python oci_api.py PORT PUBLIC_KEY_PEM STATE_JSON  (STATE_JSON records every call and object)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import http.server
import json
import os
import sys
import threading
import time
import uuid
from email.utils import formatdate
from urllib.parse import parse_qs, urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding

PAGE = 2
SHAPES = [
    {"shape": "VM.Standard2.1", "ocpus": 1, "memoryInGBs": 15, "gpus": 0, "isFlexible": False},
    {"shape": "VM.Standard2.2", "ocpus": 2, "memoryInGBs": 30, "gpus": 0, "isFlexible": False},
    {
        "shape": "VM.Standard.E4.Flex",
        "ocpus": 1,
        "memoryInGBs": 16,
        "gpus": 0,
        "isFlexible": True,
        "ocpuOptions": {"min": 1, "max": 64},
        "memoryOptions": {
            "minInGBs": 1,
            "maxInGBs": 1024,
            "minPerOcpuInGBs": 1,
            "maxPerOcpuInGBs": 64,
            "defaultPerOcpuInGBs": 16,
        },
    },
    {"shape": "VM.GPU2.1", "ocpus": 12, "memoryInGBs": 72, "gpus": 1, "isFlexible": False},
    {"shape": "VM.GPU3.2", "ocpus": 12, "memoryInGBs": 180, "gpus": 2, "isFlexible": False},
]
IMAGES = [
    {
        "id": "ocid1.image.oc1..centos7",
        "displayName": "CentOS-7-2021.01.01-0",
        "operatingSystem": "CentOS",
        "operatingSystemVersion": "7",
    },
    {
        "id": "ocid1.image.oc1..ubuntu22",
        "displayName": "Canonical-Ubuntu-22.04-2024.01.01-0",
        "operatingSystem": "Canonical Ubuntu",
        "operatingSystemVersion": "22.04",
    },
]


def new_host_key() -> str:
    """A fresh ed25519 public key in OpenSSH form (what a new VM's sshd would have)."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


class Control:
    """Settings changed at run time through ``POST /_control``."""

    launch_delay = 0.0  # seconds between storing a new instance and answering LaunchInstance
    not_found_reads = 0  # GetInstance answers 404 this many times for each new instance
    terminate_failures = 0  # the next N TerminateInstance calls fail with 500
    public_ip = "192.0.2.10"  # TEST-NET-1 unless a test points it at a real SSH host
    host_key = ""  # the host key new instances have ("" = a fresh key each)
    console_host_key = ""  # the key the console prints instead (to forge a mismatch)


class State:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data = {"instances": {}, "vcns": {}, "subnets": {}, "calls": [], "histories": {}}

    def save(self) -> None:
        """Write atomically: tests read the file while requests are being served."""
        tmp = f"{self.path}.{threading.get_ident()}.tmp"
        with open(tmp, "w") as out:
            json.dump(self.data, out)
        os.replace(tmp, self.path)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State
    public_key = None
    routing = False  # inside the state lock: answers wait for the save

    def log_message(self, *args: object) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: object = None,
        headers: dict | None = None,
        raw: bytes | None = None,
    ) -> None:
        if self.routing:  # answered once the state is saved: a client that reads the state
            self.pending = (0.0, (status, body, headers, raw))  # file after a reply sees its effect
            return
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        if self.delay:
            time.sleep(self.delay)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("opc-request-id", uuid.uuid4().hex)
        self.send_header("Date", formatdate(usegmt=True))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"code": code, "message": message})

    def _verify_signature(self, body: bytes) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Signature "):
            return False
        fields = dict(
            part.split("=", 1) for part in auth[len("Signature ") :].split(",") if "=" in part
        )
        fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
        lines = []
        for name in fields.get("headers", "").split():
            if name == "(request-target)":
                lines.append(f"(request-target): {self.command.lower()} {self.path}")
            else:
                lines.append(f"{name}: {self.headers.get(name, '')}")
        if body and "x-content-sha256" in fields.get("headers", ""):
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if self.headers.get("x-content-sha256") != digest:
                return False
        try:
            self.public_key.verify(
                base64.b64decode(fields.get("signature", "")),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def _handle(self) -> None:
        self.delay = 0.0
        self.routing = False
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_control" and self.command == "POST":
            for key, value in json.loads(body).items():
                if not hasattr(Control, key):
                    return self._error(400, "InvalidParameter", f"no setting {key}")
                setattr(Control, key, value)
            return self._send(200, {k: getattr(Control, k) for k in vars(Control) if k[0] != "_"})
        if not self._verify_signature(body):
            self._error(
                401,
                "NotAuthenticated",
                "The required information to complete"
                " authentication was not provided or was incorrect.",
            )
            return
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")[1:]  # drop the API version
        self.pending: tuple | None = None
        with self.state.lock:
            self.state.data["calls"].append(f"{self.command} /{'/'.join(parts[:1])}")
            self.routing = True
            try:
                self._route(parts, query, json.loads(body) if body else {})
            finally:
                self.routing = False
                self.state.save()
        if self.pending is not None:  # answered outside the lock: a slow answer blocks no one
            self.delay, pending = self.pending
            self._send(*pending)

    def _send_later(self, delay: float, *response: object) -> None:
        self.pending = (delay, response)

    do_GET = do_POST = do_DELETE = do_PUT = _handle

    def _page(self, items: list, query: dict) -> None:
        start = int(query.get("page") or 0)
        limit = int(query.get("limit") or PAGE)
        headers = {"opc-next-page": str(start + limit)} if start + limit < len(items) else {}
        self._send(200, items[start : start + limit], headers)

    # -- the API ----------------------------------------------------------------------------------

    def _route(self, parts: list[str], query: dict, body: dict) -> None:
        data = self.state.data
        method, kind = self.command, parts[0] if parts else ""
        if kind == "availabilityDomains" and method == "GET":
            return self._send(
                200,
                [{"name": "lfcb:EU-FRANKFURT-1-AD-1", "compartmentId": query.get("compartmentId")}],
            )
        if kind == "shapes" and method == "GET":
            return self._page(SHAPES, query)
        if kind == "images" and method == "GET":
            images = [
                dict(image, compartmentId=query.get("compartmentId"), lifecycleState="AVAILABLE")
                for image in IMAGES
                if query.get("operatingSystem") in (None, image["operatingSystem"])
                and query.get("operatingSystemVersion") in (None, image["operatingSystemVersion"])
            ]
            return self._page(images, query)
        if kind in ("vcns", "subnets"):
            return self._network(kind, parts, method, query, body)
        if kind == "instances":
            return self._instances(parts, method, query, body)
        if kind == "instanceConsoleHistories":
            return self._console(parts, method, body)
        if kind == "vnicAttachments" and method == "GET":
            attachments = [
                {
                    "id": f"ocid1.vnicattachment..{i['id'][-12:]}",
                    "instanceId": i["id"],
                    "vnicId": f"ocid1.vnic..{i['id'][-12:]}",
                    "lifecycleState": "ATTACHED",
                    "compartmentId": i["compartmentId"],
                    "availabilityDomain": i["availabilityDomain"],
                }
                for i in data["instances"].values()
                if i["id"] == query.get("instanceId")
            ]
            return self._page(attachments, query)
        if kind == "vnics" and method == "GET" and len(parts) == 2:
            suffix = parts[1].rsplit(".", 1)[-1]
            match = [i for i in data["instances"].values() if i["id"].endswith(suffix)]
            if not match:
                return self._error(404, "NotAuthorizedOrNotFound", "vnic not found")
            return self._send(
                200,
                {
                    "id": parts[1],
                    "publicIp": match[0]["_ip"],
                    "privateIp": "10.0.1.10",
                    "lifecycleState": "AVAILABLE",
                },
            )
        return self._error(404, "NotAuthorizedOrNotFound", f"{method} {kind} is not implemented")

    def _network(self, kind: str, parts: list, method: str, query: dict, body: dict) -> None:
        store = self.state.data[kind]
        if method == "GET":
            items = [
                v for v in store.values() if kind == "vcns" or v["vcnId"] == query.get("vcnId")
            ]
            return self._page(items, query)
        if method == "POST":
            item = dict(
                body,
                id=f"ocid1.{kind[:-1]}.oc1..{uuid.uuid4().hex[:12]}",
                lifecycleState="AVAILABLE",
            )
            store[item["id"]] = item
            return self._send(200, item)
        if method == "DELETE":
            store.pop(parts[1], None)
            return self._send(204)
        return self._error(405, "MethodNotAllowed", method)

    def _instances(self, parts: list, method: str, query: dict, body: dict) -> None:
        instances = self.state.data["instances"]
        if method == "POST" and len(parts) == 1:
            instance_id = f"ocid1.instance.oc1..{uuid.uuid4().hex[:12]}"
            instance = {
                "id": instance_id,
                "compartmentId": body["compartmentId"],
                "availabilityDomain": body["availabilityDomain"],
                "shape": body["shape"],
                "shapeConfig": body.get("shapeConfig") or {},
                "displayName": body.get("displayName", instance_id),
                "freeformTags": body.get("freeformTags") or {},
                "metadata": body.get("metadata") or {},
                "imageId": (body.get("sourceDetails") or {}).get("imageId"),
                "subnetId": (body.get("createVnicDetails") or {}).get("subnetId"),
                "region": "eu-frankfurt-1",
                "timeCreated": "2026-11-22T00:00:00.000Z",
                "lifecycleState": "PROVISIONING",
                "_ip": Control.public_ip,
                "_host_key": Control.host_key or new_host_key(),
                "_hidden_reads": Control.not_found_reads,
            }
            instances[instance_id] = instance
            return self._send_later(Control.launch_delay, 200, _public(instance))
        if method == "GET" and len(parts) == 1:
            items = [
                _public(i)
                for i in instances.values()
                if i["compartmentId"] == query.get("compartmentId")
            ]
            return self._page(items, query)
        instance = instances.get(parts[1]) if len(parts) > 1 else None
        if instance is None or instance["lifecycleState"] == "GONE":
            return self._error(404, "NotAuthorizedOrNotFound", "instance not found")
        if method == "GET" and instance["_hidden_reads"] > 0:
            instance["_hidden_reads"] -= 1  # not visible yet (eventual consistency)
            return self._error(404, "NotAuthorizedOrNotFound", "instance not found")
        if method == "GET":
            shown = _public(instance)
            transitions = {"PROVISIONING": "RUNNING", "TERMINATING": "TERMINATED"}
            instance["lifecycleState"] = transitions.get(
                instance["lifecycleState"], instance["lifecycleState"]
            )
            return self._send(200, shown)
        if method == "DELETE" and Control.terminate_failures > 0:
            Control.terminate_failures -= 1
            return self._error(500, "InternalError", "injected: terminate failed")
        if method == "DELETE":
            if instance["lifecycleState"] != "TERMINATED":
                instance["lifecycleState"] = "TERMINATING"
            return self._send(204)
        return self._error(405, "MethodNotAllowed", method)

    def _console(self, parts: list, method: str, body: dict) -> None:
        histories = self.state.data["histories"]
        if method == "POST" and len(parts) == 1:
            instance = self.state.data["instances"].get(body.get("instanceId"))
            if instance is None:
                return self._error(404, "NotAuthorizedOrNotFound", "instance not found")
            history = {
                "id": f"ocid1.consolehistory.oc1..{uuid.uuid4().hex[:12]}",
                "instanceId": instance["id"],
                "compartmentId": instance["compartmentId"],
                "availabilityDomain": instance["availabilityDomain"],
                "timeCreated": "2026-11-22T00:00:00.000Z",
                "lifecycleState": "REQUESTED",
            }
            histories[history["id"]] = history
            return self._send(200, history)
        history = histories.get(parts[1]) if len(parts) > 1 else None
        if history is None:
            return self._error(404, "NotAuthorizedOrNotFound", "console history not found")
        if method == "GET" and len(parts) == 3 and parts[2] == "data":
            instance = self.state.data["instances"][history["instanceId"]]
            key = Control.console_host_key or instance["_host_key"]
            text = (
                "[    0.000000] Linux version 5.15.0\n"
                "ci-info: no authorized SSH keys fingerprints found for user opc.\n"
                "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
                "256 SHA256:0000 root@instance (ED25519)\n"
                "-----END SSH HOST KEY FINGERPRINTS-----\n"
                "-----BEGIN SSH HOST KEY KEYS-----\n"
                f"{key} root@instance\n"
                "-----END SSH HOST KEY KEYS-----\n"
                "Cloud-init v. 23.1 finished\n"
            )
            return self._send(200, raw=text.encode())
        if method == "GET":
            shown = dict(history)
            history["lifecycleState"] = "SUCCEEDED"
            return self._send(200, shown)
        if method == "DELETE":
            histories.pop(parts[1])
            return self._send(204)
        return self._error(405, "MethodNotAllowed", method)


def _public(instance: dict) -> dict:
    return copy.deepcopy({k: v for k, v in instance.items() if not k.startswith("_")})


if __name__ == "__main__":
    port, key_file, state_file = sys.argv[1], sys.argv[2], sys.argv[3]
    Handler.state = State(state_file)
    with open(key_file, "rb") as pem:
        Handler.public_key = serialization.load_pem_public_key(pem.read())
    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
