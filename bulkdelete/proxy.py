"""Which proxy carries the requests to the API: the proxy variables, read as curl and requests do.

``proxy_for(url, environ)`` returns the proxy URL for ``url``, or None to connect directly:

- an ``https://`` URL takes ``https_proxy``, an ``http://`` one ``http_proxy``; either falls back
  on ``all_proxy``. Each name is read in lowercase first, then in uppercase; one that is set but
  empty means no proxy. A proxy written without a scheme is ``http://``.
- ``no_proxy`` (or ``NO_PROXY``) lists, separated by commas or spaces, the hosts reached
  directly: ``*`` is every host; a name matches itself and every name under it (a leading ``.``
  or ``*.`` changes nothing); an IP address or a CIDR block (``10.0.0.0/8``) matches addresses;
  ``:port`` after an entry limits it to that port.

Only the CLI reads the environment; the library takes ``Settings.proxy`` as given. Whether a
proxy is safe to use is for ``Settings`` to decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _variable(environ: Mapping[str, str], name: str) -> str | None:
    """Return a proxy variable, lowercase name first; None when unset or empty."""
    value = environ.get(name)
    if value is None:
        value = environ.get(name.upper())
    return value.strip() or None if value is not None else None


def _entry_matches(entry: str, host: str, port: int) -> bool:
    """Tell whether one ``no_proxy`` entry covers ``host:port`` (host lowercased, no brackets)."""
    name, wanted_port = entry, None
    if entry.startswith("["):  # [v6 address] or [v6 address]:port
        name, _, rest = entry[1:].partition("]")
        wanted_port = rest.removeprefix(":") or None
    elif entry.count(":") == 1:  # name:port; more colons make a bare IPv6 address
        name, wanted_port = entry.split(":")
    if wanted_port is not None and wanted_port != str(port):
        return False
    try:
        network = ipaddress.ip_network(name, strict=False)
    except ValueError:
        name = name.removeprefix("*").removeprefix(".")
        return bool(name) and (host == name or host.endswith("." + name))
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False  # a host name is never matched by an address


def bypassed(url: str, no_proxy: str) -> bool:
    """Tell whether ``no_proxy`` sends requests to ``url`` around the proxy."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    entries = no_proxy.replace(",", " ").lower().split()
    return "*" in entries or any(_entry_matches(entry, host, port) for entry in entries)


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """Return the proxy URL that requests to ``url`` go through, or None to connect directly."""
    no_proxy = _variable(environ, "no_proxy")
    if no_proxy is not None and bypassed(url, no_proxy):
        return None
    scheme = urlsplit(url).scheme
    proxy = _variable(environ, f"{scheme}_proxy") or _variable(environ, "all_proxy")
    if proxy is None:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def proxy_passwords(environ: Mapping[str, str]) -> list[str]:
    """Return the passwords written in any proxy variable, for the logs to mask."""
    names = [
        case(n) for n in ("http_proxy", "https_proxy", "all_proxy") for case in (str, str.upper)
    ]
    passwords = []
    for value in (environ.get(name, "") for name in names):
        try:
            password = urlsplit(value if "://" in value else f"http://{value}").password
        except ValueError:
            continue  # Settings refuses it with a message of its own
        if password:
            passwords.append(password)
    return passwords
