"""Which proxy `site-agent check` goes through for a target: the profile's, else the
environment's read the way curl reads it, and no_proxy matched the way curl matches it."""

from __future__ import annotations

import pytest

from siteagent.checks.proxy import bypasses_proxy, parse_proxy_url, proxy_settings
from siteagent.errors import ConfigError

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


@pytest.fixture
def env(monkeypatch):
    """Set proxy variables on a clean slate."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)

    def set_(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_


def test_profile_proxy_wins_over_the_environment(env):
    env(https_proxy="http://env:1", no_proxy="env.org")
    s = proxy_settings({"http": "http://site:3128", "https": "http://tls:3129", "no_proxy": ["x"]})
    assert (s.http, s.https, s.no_proxy, s.source) == (
        "http://site:3128",
        "http://tls:3129",
        ("x",),
        "profile",
    )
    assert (s.for_scheme("http"), s.for_scheme("https"), s.for_scheme("amqps")) == (
        "http://site:3128",
        "http://tls:3129",
        "http://tls:3129",
    )


def test_profile_with_only_an_https_proxy_leaves_http_direct(env):
    s = proxy_settings({"https": "http://tls:3129"})
    assert (s.http, s.https, s.no_proxy, s.source) == (None, "http://tls:3129", (), "profile")


def test_profile_with_only_an_http_proxy_tunnels_https_through_it(env):
    s = proxy_settings({"http": "http://site:3128"})
    assert (s.http, s.https, s.source) == ("http://site:3128", "http://site:3128", "profile")


def test_profile_without_proxy_falls_back_to_the_environment(env):
    env(http_proxy="http://lower:8080", https_proxy="http://tls:3129")
    for profile in (None, {}, {"no_proxy": ["ignored"], "http": ""}):
        s = proxy_settings(profile)
        assert (s.http, s.https, s.no_proxy, s.source) == (
            "http://lower:8080",
            "http://tls:3129",
            (),
            "environment",
        )


def test_lower_case_http_proxy_alone_is_used(env):
    env(http_proxy="http://lower:8080")
    s = proxy_settings(None)
    assert (s.http, s.https, s.source) == ("http://lower:8080", None, "environment")


def test_lower_case_names_win_over_upper_case(env):
    env(https_proxy="http://lower:1", HTTPS_PROXY="http://upper:2", no_proxy="a", NO_PROXY="b")
    s = proxy_settings(None)
    assert (s.https, s.no_proxy) == ("http://lower:1", ("a",))


def test_upper_case_no_proxy_is_read(env):
    env(HTTPS_PROXY="http://upper:2", NO_PROXY=" a.org  b.org,,c.org ,")
    assert proxy_settings(None).no_proxy == ("a.org", "b.org", "c.org")


def test_empty_variables_mean_no_proxy(env):
    env(http_proxy="", https_proxy="", HTTPS_PROXY="")
    s = proxy_settings(None)
    assert (s.http, s.https, s.no_proxy, s.source) == (None, None, (), "none")


def test_environment_ignored_when_asked(env):
    env(https_proxy="http://tls:3129")
    assert proxy_settings(None, use_env=False).source == "none"
    assert proxy_settings(None).source == "environment"


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypass"),
    [
        ("example.com", [" example.com "], True),
        ("example.com", ["", "  ", "example.com"], True),
        ("example.com.", ["example.com"], True),
        ("example.com", ["example.com."], True),
        ("a.example.com", ["..example.com"], False),  # curl drops one leading dot
        ("example.org", ["example.com", "*"], False),  # * is all only alone
        ("example.org", ["example.com:443"], False),
        ("[::1]", ["::1"], True),
        ("::1", ["[::1]"], False),  # compared whole: no address
        ("10.1.2.3", ["example.com", "10.1.2.3"], True),
        ("10.1.2.3", ["not-a-network", "10.1.0.0/16"], True),
        ("10.1.2.3", ["10.1.2"], False),
        # a malformed length matches nothing in curl's current source (curlx_str_number);
        # curl 7.88 (Debian 12) still read it with atoi, as /0: the address itself
        ("10.1.2.3", ["10.1.2.3/x", "10.1.2.3/"], False),
        ("10.1.2.3", ["3"], False),
        ("2001:db8::5", ["2001:db8::/32"], True),
        ("host", ["ost"], False),
    ],
)
def test_no_proxy_entries(host, no_proxy, bypass):
    """More of curl's rules (lib/noproxy.c; test_check.py asks the real curl)."""
    assert bypasses_proxy(host, no_proxy) is bypass


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://proxy.example", "proxy.example", 1080),
        ("proxy.example", "proxy.example", 1080),
        ("proxy.example:3128", "proxy.example", 3128),
        # a TLS proxy: curl's default port is 443
        ("https://proxy.example", "proxy.example", 443),
        ("https://u:p@proxy.example:8443", "proxy.example", 8443),
    ],
)
def test_proxy_url_default_ports(url, host, port):
    p = parse_proxy_url(url)
    assert (p.host, p.port) == (host, port)


def test_proxy_url_errors_name_the_field_and_hide_the_password():
    with pytest.raises(ConfigError) as err:
        parse_proxy_url("http://alice:hunter2@proxy:99999")
    assert str(err.value) == "proxy: http://alice:***@proxy:99999 has an invalid port"
    with pytest.raises(ConfigError) as err:
        parse_proxy_url("http://")
    assert str(err.value) == "proxy: http:// is not an http://host:port URL"
    with pytest.raises(ConfigError) as err:  # an IPv6 address without its closing bracket
        parse_proxy_url("http://alice:hunter2@[::1:3128")
    assert str(err.value) == "proxy: http://alice:***@[::1:3128 is not an http://host:port URL"


def test_a_loaded_profiles_proxy_section_is_used(env):
    from siteagent.profiles import load_profile

    env(https_proxy="http://env:1")
    s = proxy_settings(load_profile("polaris").proxy)
    assert (s.http, s.https, s.source) == (
        "http://proxy.alcf.anl.gov:3128",
        "http://proxy.alcf.anl.gov:3128",
        "profile",
    )
    assert s.no_proxy == ("localhost", "127.0.0.1", ".alcf.anl.gov", ".anl.gov")
