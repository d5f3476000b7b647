"""The egress policy (config/security/egress.py) on its own: the one answer to "may the control plane connect
to this host?", for clones today and webhooks later. The API's and the clone's uses of it are tested
in tests/projects/test_repo_url_rules.py and tests/workspaces/test_clone_isolation.py."""

import socket

import pytest

from config.security import egress


@pytest.fixture(autouse=True)
def nothing_allowed(settings):
    settings.EGRESS_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    ("host", "address", "reason"),
    [
        ("::1", "::1", "loopback"),
        ("::", "::", "unspecified"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1", "loopback"),
        ("::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "link-local"),
        ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of the metadata address
        ("2002:7f00:1::", "2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("fe80::1", "fe80::1", "link-local"),
        ("fd12:3456::1", "fd12:3456::1", "unique-local"),
        ("ff02::1", "ff02::1", "multicast"),
        ("2001:db8::1", "2001:db8::1", "reserved"),  # documentation
        ("0x7f.1", "127.0.0.1", "loopback"),
        ("017700000001", "127.0.0.1", "loopback"),
        ("100.127.255.254", "100.127.255.254", "shared address space"),
        ("198.18.0.1", "198.18.0.1", "reserved"),  # benchmarking
        ("LOCALHOST.", "127.0.0.1", "loopback"),
        ("app.localhost", "127.0.0.1", "loopback"),
    ],
)
def test_internal_addresses_in_every_spelling_are_refused(host, address, reason):
    with pytest.raises(egress.EgressRefused) as refused:
        egress.check_literal(host)

    assert refused.value.message == f"the address {address} is not allowed ({reason})"


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "github.com", "0x8.8.8.8x"]
)
def test_public_addresses_and_names_pass_the_literal_check(host):
    egress.check_literal(host)


def test_one_refused_address_among_many_refuses_the_name(monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("140.82.112.3", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ],
    )

    with pytest.raises(egress.EgressRefused) as refused:
        egress.resolve("git.example.com", 443)

    assert (refused.value.address, refused.value.reason) == ("10.1.2.3", "private")


def test_a_name_that_resolves_only_to_public_addresses_is_allowed_with_them(monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("140.82.112.3", port))] * 2,
    )

    resolved = egress.resolve("git.example.com", 443)

    assert [str(a) for a in resolved.addresses] == ["140.82.112.3"]


def test_a_name_that_does_not_resolve_is_told_apart():
    with pytest.raises(egress.UnresolvableHost):
        egress.resolve("no-such-host.invalid", 443)


def test_an_operator_allows_networks_including_their_ipv4_mapped_forms(settings):
    settings.EGRESS_ALLOWED_NETWORKS = ["10.20.0.0/16", "fd00:1::/64"]

    egress.check_literal("10.20.3.4")
    egress.check_literal("::ffff:10.20.3.4")
    egress.check_literal("fd00:1::5")
    with pytest.raises(egress.EgressRefused):
        egress.check_literal("10.21.0.1")
