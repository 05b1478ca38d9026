"""The hub of the compose stack (deploy/compose.yml): the MODI login and spawn path.

1. The front proxy (service ``proxy``) authenticates the person and forwards ``Remote-User``, a
   certificate-style DN in the JSON header ``User`` and the shared secret header. HeaderAuthenticator
   believes those headers only with the secret (``GRIDHUB_HEADER_SECRET``, made at first start).
2. At spawn, ldap_hooks (thesis listing 7) finds or creates the user's posixAccount in OpenLDAP with
   the next uidNumber and hands ``NB_USER``/``NB_UID`` to the notebook.
3. MultipleSpawner shows the spawn page (or takes REST ``user_options``); its ``container`` child,
   DockerSpawner, starts the ``hpc`` notebook on the stack's network with the shared home volume at
   /home and the MUNGE key; its start.sh resolves the user through LDAP and runs JupyterLab with that
   uid, so ``sbatch`` in the terminal runs jobs on the slurmd containers as that user.

Secrets arrive in the environment from gridhub-hub (docker/hub/gridhub-hub), never in this file.
"""

import os

from jupyterhub.log import log_request

from headerauthenticator import JSONParser
from ldap_hooks import (
    INCREMENT_ATTRIBUTE,
    LDAP,
    LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
    LDAP_SEARCH_ATTRIBUTE_QUERY,
    SPAWNER_SUBMIT_DATA,
    setup_ldap_entry_hook,
)

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
env = os.environ.get
data = "/srv/jupyterhub/data"
base_dn = env("GRIDHUB_LDAP_BASE", "dc=migrid,dc=org")

# --- the hub behind its configurable-http-proxy; people reach it only through the front proxy
c.JupyterHub.bind_url = "http://0.0.0.0:8000"
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.db_url = f"sqlite:///{data}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{data}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{data}/proxy.pid"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"
c.JupyterHub.default_url = "/hub/home"
c.JupyterHub.cleanup_servers = False  # notebooks survive a hub restart or upgrade

# --- login: HeaderAuthenticator, headers believed only with the front proxy's shared secret
c.JupyterHub.authenticator_class = "header"
c.Authenticator.allow_all = True  # whoever the front proxy lets in
c.Authenticator.admin_users = {name for name in env("GRIDHUB_ADMIN_USERS", "").split(",") if name}
c.HeaderAuthenticator.enable_auth_state = True
c.HeaderAuthenticator.trusted_proxy_ips = []  # peers are not trusted; the secret is required
c.HeaderAuthenticator.shared_secret_header = env("GRIDHUB_SECRET_HEADER", "X-Gridhub-Secret")
c.HeaderAuthenticator.allowed_headers = {"auth": "Remote-User", "User": "User"}
c.HeaderAuthenticator.header_parser_classes = {"User": JSONParser}
c.HeaderAuthenticator.user_external_allow_attributes = ["User", "CERT"]


def log_request_without_the_secret(handler):
    """JupyterHub logs every header of a request that failed with 5xx (scrubbing only Cookie and
    Authorization); the front proxy's shared secret must not be among them."""
    handler.request.headers.pop(c.HeaderAuthenticator.shared_secret_header, None)
    log_request(handler)


c.JupyterHub.tornado_settings = {"log_function": log_request_without_the_secret}

# --- accounts: ldap_hooks creates the posixAccount at spawn (thesis listing 7)
c.Spawner.pre_spawn_hook = setup_ldap_entry_hook
LDAP.url = env("GRIDHUB_LDAP_URL", "ldap://openldap")
LDAP.user = f"cn=admin,{base_dn}"
# LDAP.password comes from $LDAP_HOOKS_PASSWORD
LDAP.base_dn = base_dn
LDAP.submit_spawner_attribute = "user.data"
LDAP.submit_spawner_attribute_keys = ("User", "CERT")
LDAP.replace_object_with = {"/": "+"}
LDAP.dynamic_attributes = {
    "uid": LDAP_FIRST_SEARCH_ATTRIBUTE_QUERY,
    "emailAddress": SPAWNER_SUBMIT_DATA,
    "uidNumber": LDAP_SEARCH_ATTRIBUTE_QUERY,
}
LDAP.set_spawner_attributes = {"environment": {"NB_USER": "{uid}", "NB_UID": "{uidNumber}"}}
LDAP.unique_object_attributes = ["uid"]
LDAP.search_attribute_queries = [
    {
        "search_base": base_dn,
        "search_filter": "(objectclass=X-nextUserIdentifier)",
        "attributes": ["uidNumber"],
    }
]
LDAP.search_result_operations = {
    "uidNumber": {"action": INCREMENT_ATTRIBUTE, "modify_dn": f"cn=uidNext,{base_dn}"}
}
LDAP.object_classes = ["X-certsDistinguishedName", "PosixAccount"]
LDAP.object_attributes = {
    "uid": "{uid}",
    "uidNumber": "{uidNumber}",
    "gidNumber": "100",
    "homeDirectory": "/home/{uid}",
    "loginShell": "/bin/bash",
}

# --- notebooks: the MultipleSpawner's spawn page; its "container" child is DockerSpawner, which starts
# the hpc notebook image on the stack's network. More templates (cloud VMs through corc, KubeSpawner)
# go next to it: see deploy/README.md.
notebook_image = env("GRIDHUB_NOTEBOOK_IMAGE", "gridhub/notebook-hpc:0.1.0")
c.JupyterHub.spawner_class = "multiple"
c.MultipleSpawner.providers = {"cluster": {"corc": None, "display_name": "This cluster"}}
c.MultipleSpawner.templates = [
    {
        "name": "Notebook container",
        "resource_type": "container",
        "providers": ["cluster"],
        "spawner": {"class": "dockerspawner.DockerSpawner"},
    }
]
c.MultipleSpawner.deployments = {
    "container": [{"name": "hpc", "image": notebook_image, "provider": "cluster"}]
}
# DockerSpawner's own settings (the template's kwargs and the chosen image, CPUs and memory come on
# top).
c.DockerSpawner.name_template = "gridhub-notebook-{username}--{servername}"
c.DockerSpawner.pull_policy = "never"  # images are built locally (docker/build.py)
c.DockerSpawner.network_name = env("GRIDHUB_NETWORK", "gridhub")
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
# start.sh runs as root to start nslcd and munged, then drops to the user's uid from LDAP.
c.DockerSpawner.extra_create_kwargs = {"user": "root"}
c.DockerSpawner.extra_host_config = {"init": True}
c.DockerSpawner.volumes = {
    env("GRIDHUB_HOME_VOLUME", "gridhub-home"): "/home",
    env("GRIDHUB_MUNGE_VOLUME", "gridhub-munge"): {"bind": "/run/gridhub/munge", "mode": "ro"},
}
c.DockerSpawner.environment = {
    "LDAP_URI": LDAP.url + "/",
    "LDAP_BASE": base_dn,
    "MUNGE_KEY_FILE": "/run/gridhub/munge/munge.key",
}
c.Spawner.default_url = "/lab"
