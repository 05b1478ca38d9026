"""Which network peer sent a request, decided without trusting anything the client wrote.

The hub always sits behind its own proxy (configurable-http-proxy). That proxy appends the address of
the connection it received to ``X-Forwarded-For``, so the *last* entry is written by our proxy, not by
the client. The peer that sent the request to the hub's front door is therefore:

* the TCP peer of the hub connection, when that peer is not the hub's own proxy; or
* the last ``X-Forwarded-For`` entry, when the TCP peer is the hub's own proxy.

Every earlier ``X-Forwarded-For`` entry may be forged by the client and is never read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from tornado.httputil import HTTPServerRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_networks(values: Iterable[str], setting: str) -> list[Network]:
    """Parse IP addresses or CIDR blocks; raise ``ValueError`` naming the bad entry and the setting.

    An IPv4-mapped IPv6 entry (``::ffff:10.0.0.1``, ``::ffff:10.0.0.0/104``) becomes the IPv4
    network it stands for, so it matches the peer however the socket reports it.
    """
    networks: list[Network] = []
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(
                f"{setting}: {value!r} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"
            ) from None
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            mapped = network.network_address.ipv4_mapped
            assert mapped is not None  # inside ::ffff:0:0/96
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        networks.append(network)
    return networks


def address_in(address: str, networks: Iterable[Network]) -> bool:
    """True when ``address`` (IPv4, IPv6 or IPv4-mapped IPv6) is inside one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def tcp_peer(request: HTTPServerRequest) -> str:
    """The address of the socket that sent ``request`` to the hub (ignores X-Real-Ip and friends)."""
    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    if isinstance(address, tuple) and address:
        return str(address[0])
    # A unix socket has no address: only a local process can connect to it.
    return "127.0.0.1" if address in ("", None) and context is not None else ""


def front_peer(request: HTTPServerRequest, hub_proxy: Iterable[Network]) -> str:
    """The address that connected to the hub's front door (see the module docstring)."""
    peer = tcp_peer(request)
    if not address_in(peer, hub_proxy):
        return peer
    forwarded = request.headers.get_list("X-Forwarded-For")
    if not forwarded:
        return peer
    return ",".join(forwarded).rsplit(",", 1)[-1].strip()
