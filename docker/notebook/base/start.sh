#!/bin/bash
# docker-stacks style start: `start.sh CMD...` runs CMD as NB_USER (uid NB_UID, group NB_GID).
# As root: runs /usr/local/bin/start-notebook.d/* (services, e.g. the LDAP name service), finds NB_USER
# (local or LDAP; made locally when absent), creates the home directory (mode 0700) if missing, runs
# /usr/local/bin/before-notebook.d/*, then drops privileges. As any other user: the hooks, then CMD.
set -euo pipefail

run_hooks() {
    local dir=$1 hook
    [ -d "$dir" ] || return 0
    for hook in "$dir"/*; do
        [ -e "$hook" ] || continue
        case "$hook" in
            *.sh) echo "start.sh: sourcing $hook" >&2; # shellcheck disable=SC1090
                  source "$hook" ;;
            *) if [ -x "$hook" ]; then echo "start.sh: running $hook" >&2; "$hook"; fi ;;
        esac
    done
}

if [ "$(id -u)" != 0 ]; then
    run_hooks /usr/local/bin/before-notebook.d
    exec "$@"
fi

run_hooks /usr/local/bin/start-notebook.d

NB_USER=${NB_USER:-jovyan}
NB_GID=${NB_GID:-100}
entry=""
# An account from the directory can take a moment to appear after the hub created it.
for _ in $(seq "${NB_USER_WAIT_SECONDS:-10}0"); do
    entry=$(getent passwd "$NB_USER" || true)
    [ -n "$entry" ] && break
    [ -n "${LDAP_URI:-}" ] || break
    sleep 0.1
done
if [ -z "$entry" ]; then
    if [ -n "${LDAP_URI:-}" ] && [ "${NB_USER_CREATE_LOCAL:-no}" != yes ]; then
        echo "start.sh: user $NB_USER is not in the directory at $LDAP_URI" >&2
        exit 1
    fi
    useradd --no-log-init --no-create-home --uid "${NB_UID:-1000}" --gid "$NB_GID" \
        --home-dir "/home/$NB_USER" --shell /bin/bash "$NB_USER"
    entry=$(getent passwd "$NB_USER")
fi
IFS=: read -r _ _ uid gid _ home _ <<<"$entry"
if [ -n "${NB_UID:-}" ] && [ "$NB_UID" != "$uid" ]; then
    echo "start.sh: $NB_USER has uid $uid, not NB_UID=$NB_UID" >&2
    exit 1
fi
if [ ! -d "$home" ]; then
    install -d -o "$uid" -g "$gid" -m 0700 "$home"
fi
export NB_UID=$uid NB_GID=$gid HOME=$home USER=$NB_USER LOGNAME=$NB_USER
cd "$home"

run_hooks /usr/local/bin/before-notebook.d

exec setpriv --reuid="$uid" --regid="$gid" --init-groups --inh-caps=-all --bounding-set=-all \
    env PATH="$PATH" "$@"
