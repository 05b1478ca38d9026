"""The demo hub: HeaderAuthenticator behind nginx, the MultipleSpawner (this machine, a sandbox VM
and, when run.py found one, the SLURM cluster).

`make demo` runs it through deploy/demo/run.py, which sets the GRIDHUB_DEMO_* variables below.
"""

import json
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
state = Path(os.environ["GRIDHUB_DEMO_DIR"])

# The hub's proxy listens on loopback only; people come in through nginx on 127.0.0.1:8000.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["GRIDHUB_DEMO_HUB_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("GRIDHUB_DEMO_HUB_API_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['GRIDHUB_DEMO_PROXY_API_PORT']}"
c.JupyterHub.default_url = "/hub/home"

# nginx authenticates with HTTP basic auth and forwards the user name in Remote-User, on /hub/login
# only, with the shared secret run.py made (.demo/header_secret, handed over as GRIDHUB_HEADER_SECRET).
c.JupyterHub.authenticator_class = "header"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"demo"}
c.HeaderAuthenticator.enable_auth_state = True
c.HeaderAuthenticator.trusted_proxy_ips = ["127.0.0.1"]
c.HeaderAuthenticator.shared_secret_header = "X-Gridhub-Secret"

# The MultipleSpawner offers this machine (a local process) and a sandbox VM: corc orders a
# network namespace with its own sshd (run.py writes corc's config to .demo/corc/config), and
# CloudSSHSpawner runs JupyterLab there over an SSH tunnel. Named servers: both at once.
singleuser = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
c.JupyterHub.spawner_class = "multiple"
c.JupyterHub.allow_named_servers = True
c.MultipleSpawner.corc_config_file = os.environ.get("CORC_CONFIG_FILE", "")
c.MultipleSpawner.providers = {
    "local": {"display_name": "This machine"},
    "sandbox": {"display_name": "Sandbox VM"},
}
c.MultipleSpawner.templates = [
    {
        "name": "This machine",
        "resource_type": "bare_metal",
        "providers": ["local"],
        "spawner": {
            "class": "jupyterhub.spawner.SimpleLocalProcessSpawner",
            "kwargs": {"home_dir_template": str(state / "home" / "{username}")},
        },
    },
    {
        "name": "Sandbox VM",
        "resource_type": "virtual_machine",
        "providers": ["sandbox"],
        "spawner": {
            "class": "cloudsshspawner.CloudSSHSpawner",
            # The sandbox VM logs in as this machine's user: its servers' files go in the
            # demo's state, not in that user's ~/.gridhub (which another hub may use too).
            "kwargs": {
                "remote_command": [singleuser],
                "remote_root": str(state / "sandbox-servers"),
            },
        },
        "authenticator": {"class": "corc_core.SSHAuthenticator", "kwargs": {}},
    },
]
c.MultipleSpawner.deployments = {
    "bare_metal": [{"name": "this_machine", "provider": "local", "display_name": "JupyterLab"}],
    "virtual_machine": [
        {"name": "sandbox_vm", "provider": "sandbox", "image": "This machine's Debian (sandbox)"}
    ],
}
c.Spawner.cmd = [singleuser]
c.Spawner.default_url = "/lab"
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]

# The SLURM cluster, when run.py found one answering (GRIDHUB_DEMO_SLURM: its nodes and sizes). The
# notebook is a batch job (batchspawner); it posts its port back to the hub's batchspawner API.
cluster = json.loads(os.environ.get("GRIDHUB_DEMO_SLURM") or "null")
if cluster:
    import batchspawner  # noqa: F401 - registers POST /hub/api/batchspawner

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # demo_slurm.DemoSlurmSpawner
    slurm_env = {"SLURM_CONF": cluster["slurm_conf"]} if cluster["slurm_conf"] else {}
    c.MultipleSpawner.providers["slurm"] = {
        "corc": None,
        "display_name": "SLURM cluster",
        "limits": {"cpu": cluster["cpu"], "memory_gb": cluster["memory_gb"], "gpus": 0},
    }
    c.MultipleSpawner.templates.append(
        {
            "name": "SLURM job",
            "resource_type": "bare_metal",
            "providers": ["slurm"],
            "spawner": {
                "class": "demo_slurm.DemoSlurmSpawner",
                "kwargs": {
                    "exec_prefix": "",  # submit as the demo's own account (no sudo)
                    "batchspawner_singleuser_cmd": str(
                        Path(sys.executable).with_name("batchspawner-singleuser")
                    ),
                    "daemon_resolver": cluster["resolver"],
                    "startup_poll_interval": 0.5,
                    "req_homedir": str(state / "home" / "{JUPYTERHUB_USER}"),
                    "environment": slurm_env,
                },
            },
        }
    )
    c.MultipleSpawner.deployments["bare_metal"].append(
        {"name": "slurm_job", "provider": "slurm", "display_name": "JupyterLab as a SLURM job"}
    )
