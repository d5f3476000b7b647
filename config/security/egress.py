"""The egress policy: may the control plane connect to this host?

Everything a user's configuration makes the control plane fetch (a project's repository today,
webhooks later) asks here first, so that a user cannot aim the control plane at itself, at the
cloud's metadata service, at the database or at another tenant's machine (server-side request
forgery). The rule: resolve the name, and refuse if *any* address it resolves to is loopback,
private, link-local (which holds the metadata address 169.254.169.254), unique-local, multicast,
unspecified, reserved, shared (CGNAT, 100.64.0.0/10), or an IPv4-mapped/translated IPv6 form of
one of those, unless the operator allows its network with ``EGRESS_ALLOWED_NETWORKS``.

Two entry points:

* ``check_literal(host)``: at request time, for a host written as an address (in any of the forms
  that resolvers accept: ``127.1``, ``0x7f000001``, ``2130706433``, ``0177.0.0.1``). A name is not
  resolved then: it may resolve differently later, so its check belongs to the moment of use.
* ``resolve(host, port)``: at the moment of use. It returns the checked addresses, and the caller
  must connect to one of them (not to the name again), so that nothing can change in between
  (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Checked in this order; the first that contains the address names the reason.
_REFUSED: list[tuple[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]] = [
    ("unspecified", [ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128")]),
    ("loopback", [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]),
    ("link-local", [ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")]),
    (
        "private",
        [
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("172.16.0.0/12"),
            ipaddress.ip_network("192.168.0.0/16"),
        ],
    ),
    ("shared address space", [ipaddress.ip_network("100.64.0.0/10")]),
    ("unique-local", [ipaddress.ip_network("fc00::/7")]),
    ("multicast", [ipaddress.ip_network("224.0.0.0/4"), ipaddress.ip_network("ff00::/8")]),
]


class EgressRefused(Exception):
    """The policy refuses this address. ``message`` is safe to show to the user."""

    def __init__(self, address: str, reason: str):
        super().__init__(f"the address {address} is not allowed ({reason})")
        self.address = address
        self.reason = reason
        self.message = str(self)


class UnresolvableHost(Exception):
    """The name does not resolve (or resolves to nothing usable)."""


@dataclass(frozen=True)
class Resolved:
    host: str
    port: int
    addresses: tuple[Address, ...]

    @property
    def address(self) -> Address:
        """The address to connect to: every one of them passed the policy."""
        return self.addresses[0]


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in settings.EGRESS_ALLOWED_NETWORKS]


def refusal(address: Address) -> str | None:
    """Why ``address`` is refused, or None if the control plane may connect to it."""
    for network in allowed_networks():
        if address.version == network.version and address in network:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1, 64:ff9b::7f00:1 (NAT64), 2002:7f00:1:: (6to4) and ::127.0.0.1 reach
        # (or name) an IPv4 address: judge that one.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address in ipaddress.ip_network("::/96") and int(address) > 1:
            embedded = ipaddress.IPv4Address(int(address))  # the deprecated IPv4-compatible form
        if embedded is not None:
            return refusal(embedded)
    for reason, networks in _REFUSED:
        if any(address.version == net.version and address in net for net in networks):
            return reason
    if address.is_reserved or address.is_multicast or address.is_unspecified or not address.is_global:
        # Whatever else IANA keeps out of the public internet (240/4, benchmarking, documentation...).
        return "reserved"
    return None


def literal_address(host: str) -> Address | None:
    """``host`` as an address if it is written as one, in any form a resolver would accept, else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefABCDEFxX." for c in host):
        try:
            # inet_aton reads the classic forms (127.1, 0x7f000001, 2130706433, 0177.0.0.1) as
            # getaddrinfo and curl do.
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_literal(host: str) -> None:
    """Refuse ``host`` now if it is an address (or ``localhost``) that the policy refuses; names wait
    for ``resolve``."""
    address = literal_address(host)
    if address is None and (host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost")):
        address = ipaddress.IPv4Address("127.0.0.1")  # RFC 6761: always loopback, no need to ask DNS
    if address is not None and (reason := refusal(address)) is not None:
        raise EgressRefused(str(address), reason)


def resolve(host: str, port: int) -> Resolved:
    """Every address ``host`` resolves to, each allowed by the policy; raises ``EgressRefused`` if any
    is refused, ``UnresolvableHost`` if there are none."""
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnresolvableHost(host) from exc
        addresses = []
        for *_, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise UnresolvableHost(host)
    for address in addresses:
        if (reason := refusal(address)) is not None:
            raise EgressRefused(str(address), reason)
    return Resolved(host=host, port=port, addresses=tuple(addresses))
