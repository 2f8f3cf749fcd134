"""An Npgsql (.NET) connection string, as operators write it in
`ConnectionStrings__Default`, turned into what this service uses: a libpq
conninfo, the pool sizes, the statement timeout and the search path.

Every documented Npgsql key is known here and falls in one of three kinds
(docs/configuration.md, "Connection settings"): mapped to a libpq keyword or a setting of
the service, accepted and ignored (it tunes Npgsql itself and has no
meaning for libpq), or refused (a value that cannot be honoured). A key
Npgsql does not document is refused by name. No message ever quotes a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

VARIABLE = "ConnectionStrings__Default"


class ConnectionStringError(ValueError):
    """A key or value the service cannot honour; the message names the key."""


@dataclass(frozen=True)
class NpgsqlSettings:
    conninfo: str
    search_path: str | None = None
    pool_min: int | None = None
    pool_max: int | None = None
    command_timeout: float | None = None
    # Canonical names of the keys given that have no meaning here, for the
    # one start-up log line (never their values).
    ignored: tuple[str, ...] = field(default=())


# Canonical key name -> its spellings: Npgsql accepts the display name, the
# .NET property name and a few synonyms, case-insensitively. Matching here
# ignores case and spaces, so "SSL Mode", "SslMode" and "sslmode" are one key.
_SPELLINGS = {
    "Host": ("Server",),
    "Port": (),
    "Database": ("DB",),
    # "User" is not Npgsql's, but this service has always taken it.
    "Username": ("User Name", "User Id", "UID", "User"),
    "Password": ("PSW", "PWD"),
    "Passfile": (),
    "Application Name": (),
    "Search Path": (),
    "Client Encoding": (),
    "SSL Mode": (),
    "Trust Server Certificate": (),
    "Root Certificate": (),
    "SSL Certificate": (),
    "SSL Key": (),
    "SSL Password": (),
    "SSL Negotiation": (),
    "Channel Binding": (),
    "GSS Encryption Mode": (),
    "Require Auth": (),
    "Kerberos Service Name": ("Krbsrvname",),
    "Target Session Attributes": (),
    "Load Balance Hosts": (),
    "Pooling": (),
    "Minimum Pool Size": ("MinPoolSize",),
    "Maximum Pool Size": ("MaxPoolSize",),
    "Timeout": (),
    "Command Timeout": (),
    "Keepalive": (),
    "Tcp Keepalive": (),
    "Tcp Keepalive Time": (),
    "Tcp Keepalive Interval": (),
    # Accepted and ignored: each tunes Npgsql or .NET, not libpq or this service.
    "Enlist": (),
    "Connection Lifetime": ("Load Balance Timeout",),
    "Connection Idle Lifetime": (),
    "Connection Pruning Interval": (),
    "Max Auto Prepare": (),
    "Auto Prepare Min Usages": (),
    "No Reset On Close": (),
    "Include Error Detail": (),
    "Log Parameters": (),
    "Server Compatibility Mode": (),
    "Encoding": (),
    "Timezone": (),
    "Multiplexing": (),
    "Write Coalescing Buffer Threshold Bytes": (),
    "Read Buffer Size": (),
    "Write Buffer Size": (),
    "Socket Receive Buffer Size": (),
    "Socket Send Buffer Size": (),
    "Internal Command Timeout": (),
    "Cancellation Timeout": (),
    "Host Recheck Seconds": (),
    "Persist Security Info": (),
    "Check Certificate Revocation": (),
    "Include Realm": (),
    "Integrated Security": (),
    "Options": (),
    "Array Nullability Mode": (),
    "Load Table Composites": (),
    "EF Template Database": (),
    "EF Admin Database": (),
    "Use Perf Counters": (),
}

# Keys that tune Npgsql or .NET only: accepted, and named in the start-up
# line (docs/configuration.md, "Connection settings", says why each has no meaning here).
IGNORED = frozenset({
    "Enlist", "Connection Lifetime", "Connection Idle Lifetime", "Connection Pruning Interval",
    "Max Auto Prepare", "Auto Prepare Min Usages", "No Reset On Close", "Include Error Detail",
    "Log Parameters", "Server Compatibility Mode", "Encoding", "Timezone", "Multiplexing",
    "Write Coalescing Buffer Threshold Bytes", "Read Buffer Size", "Write Buffer Size",
    "Socket Receive Buffer Size", "Socket Send Buffer Size", "Internal Command Timeout",
    "Cancellation Timeout", "Host Recheck Seconds", "Persist Security Info",
    "Check Certificate Revocation", "Include Realm", "Integrated Security", "Options",
    "Array Nullability Mode", "Load Table Composites", "EF Template Database", "EF Admin Database",
    "Use Perf Counters",
})


def _squash(key: str) -> str:
    return re.sub(r"\s+", "", key).lower()


_CANONICAL = {_squash(spelling): name for name, spellings in _SPELLINGS.items() for spelling in (name, *spellings)}

# Same keyword in libpq, value as given.
_PASSTHROUGH = {
    "Database": "dbname", "Username": "user", "Password": "password", "Passfile": "passfile",
    "Application Name": "application_name", "Client Encoding": "client_encoding",
    "Root Certificate": "sslrootcert", "SSL Certificate": "sslcert", "SSL Key": "sslkey",
    "SSL Password": "sslpassword", "Kerberos Service Name": "krbsrvname",
}

# Npgsql's enum names (case-insensitive) -> libpq's values.
_ENUMS = {
    "SSL Mode": ("sslmode", {"disable": "disable", "allow": "allow", "prefer": "prefer", "require": "require",
                             "verifyca": "verify-ca", "verifyfull": "verify-full"}),
    "SSL Negotiation": ("sslnegotiation", {"postgres": "postgres", "direct": "direct"}),
    "Channel Binding": ("channel_binding", {"disable": "disable", "prefer": "prefer", "require": "require"}),
    "GSS Encryption Mode": ("gssencmode", {"disable": "disable", "prefer": "prefer", "require": "require"}),
    # libpq has no prefer-primary: it tries the hosts in order, so list the
    # primary first with "any", or insist with "primary".
    "Target Session Attributes": ("target_session_attrs", {
        "any": "any", "primary": "primary", "standby": "standby", "preferstandby": "prefer-standby",
        "readwrite": "read-write", "readonly": "read-only"}),
}

# What libpq's require_auth accepts (an Npgsql list of methods, comma-separated,
# each optionally negated with "!").
_AUTH_METHODS = {"password", "md5", "gss", "sspi", "scram-sha-256", "none"}


def parse(text: str) -> NpgsqlSettings:
    """The settings of an Npgsql connection string; ConnectionStringError
    (naming the key) for anything that cannot be honoured."""
    given = _entries(text)
    params: dict[str, str] = {}
    settings: dict[str, Any] = {}
    for name, value in given.items():
        if name in IGNORED:
            continue
        if name in _PASSTHROUGH:
            params[_PASSTHROUGH[name]] = value
        elif name in _ENUMS:
            keyword, values = _ENUMS[name]
            params[keyword] = _choice(name, value, values)
    params.update(_hosts(given))
    params.update(_tls(given, params.get("sslmode")))
    params.update(_keepalives(given))
    if "Timeout" in given:
        params["connect_timeout"] = str(_integer("Timeout", given["Timeout"], low=1, high=1024))
    if "Load Balance Hosts" in given and _boolean("Load Balance Hosts", given["Load Balance Hosts"]):
        params["load_balance_hosts"] = "random"
    if "Require Auth" in given:
        params["require_auth"] = _require_auth(given["Require Auth"])
    if "Minimum Pool Size" in given:
        settings["pool_min"] = _integer("Minimum Pool Size", given["Minimum Pool Size"], low=0, high=1000)
    if "Maximum Pool Size" in given:
        settings["pool_max"] = _integer("Maximum Pool Size", given["Maximum Pool Size"], low=1, high=1000)
    if settings.get("pool_min", 0) > settings.get("pool_max", 1000):
        raise ConnectionStringError(f"{VARIABLE}: Minimum Pool Size is above Maximum Pool Size")
    if "Command Timeout" in given:
        settings["command_timeout"] = float(_integer("Command Timeout", given["Command Timeout"], low=1, high=600,
                                                     zero="0 (no limit) is not accepted: every statement has one"))
    if given.get("Search Path"):
        settings["search_path"] = _search_path(given["Search Path"])
    ignored = [name for name in given if name in IGNORED]
    if "Pooling" in given and not _boolean("Pooling", given["Pooling"]):
        # The service always pools (one pool per worker); see docs/configuration.md.
        ignored.append("Pooling")
    return NpgsqlSettings(conninfo=_conninfo(params), ignored=tuple(ignored), **settings)


def _entries(text: str) -> dict[str, str]:
    given: dict[str, str] = {}
    for part in _split(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConnectionStringError(f"{VARIABLE} has an entry that is not key=value")
        name = _CANONICAL.get(_squash(key))
        if name is None:
            # The key only, as written: it is not a value, so it cannot be a secret.
            raise ConnectionStringError(f"{VARIABLE} has an unsupported key {key.strip().lower()!r}")
        given[name] = _unquote(value.strip())
    return given


def _split(text: str) -> list[str]:
    """Entries separated by `;`, where a double- or single-quoted value may
    hold one (as in .NET's DbConnectionStringBuilder)."""
    parts, current, quote = [], [], None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char == ";":
            parts.append("".join(current))
            current = []
        else:
            if char in "\"'" and "".join(current).rstrip().endswith("="):
                quote = char
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _hosts(given: dict[str, str]) -> dict[str, str]:
    """Host (one, or a comma-separated list, each optionally host:port) and
    Port (one, or one per host) -> libpq's host and port lists."""
    if not given.get("Host"):
        raise ConnectionStringError(f"{VARIABLE} has no Host")
    ports = [p.strip() for p in given.get("Port", "").split(",")] if given.get("Port") else []
    for port in ports:
        _integer("Port", port, low=1, high=65535)
    hosts: list[str] = []
    own_ports: list[str | None] = []
    for entry in (h.strip() for h in given["Host"].split(",")):
        host, own_port = _host_and_port(entry)
        hosts.append(host)
        own_ports.append(own_port)
    if len(ports) > 1 and len(ports) != len(hosts):
        raise ConnectionStringError(f"{VARIABLE}: Port must be one port, or one per host")
    default = ports[0] if len(ports) == 1 else "5432"
    chosen = [own or (ports[i] if len(ports) > 1 else default) for i, own in enumerate(own_ports)]
    return {"host": ",".join(hosts), "port": ",".join(chosen)}


def _host_and_port(entry: str) -> tuple[str, str | None]:
    if not entry:
        raise ConnectionStringError(f"{VARIABLE}: Host has an empty entry")
    if entry.startswith("/") or entry.startswith("@"):
        return entry, None  # a Unix-socket directory
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", entry) or re.fullmatch(r"([^:\[\]]+)(?::(\d+))?", entry)
    if match is None:
        if re.fullmatch(r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*", entry):
            return entry, None  # a bare IPv6 address
        raise ConnectionStringError(f"{VARIABLE}: Host must be host or host:port (comma-separated for several)")
    host, port = match.group(1), match.group(2)
    if port is not None:
        _integer("Port", port, low=1, high=65535)
    return host, port


def _tls(given: dict[str, str], sslmode: str | None) -> dict[str, str]:
    """Trust Server Certificate=true: no verification of the server's
    certificate. libpq's disable/allow/prefer/require verify nothing by
    themselves, so the mode stays; it contradicts verify-ca/verify-full and a
    Root Certificate (with which libpq's require verifies), so those are refused."""
    if "Trust Server Certificate" not in given or not _boolean("Trust Server Certificate",
                                                               given["Trust Server Certificate"]):
        return {}
    if sslmode in ("verify-ca", "verify-full"):
        raise ConnectionStringError(f"{VARIABLE}: Trust Server Certificate=true contradicts SSL Mode={sslmode}")
    if "Root Certificate" in given:
        raise ConnectionStringError(f"{VARIABLE}: Trust Server Certificate=true contradicts a Root Certificate")
    return {}


def _keepalives(given: dict[str, str]) -> dict[str, str]:
    """Keepalive (seconds of idle before a probe; 0 = off), Tcp Keepalive,
    Tcp Keepalive Time and Interval (seconds) -> libpq's TCP keepalives.
    libpq keeps TCP keepalives on by default with the system's timings, so
    an off value leaves that default; Tcp Keepalive Time wins over Keepalive."""
    params: dict[str, str] = {}
    idle = _integer("Keepalive", given["Keepalive"], low=0, high=86400) if "Keepalive" in given else 0
    if "Tcp Keepalive Time" in given:
        idle = _integer("Tcp Keepalive Time", given["Tcp Keepalive Time"], low=0, high=86400) or idle
    if "Tcp Keepalive" in given and _boolean("Tcp Keepalive", given["Tcp Keepalive"]):
        params["keepalives"] = "1"
    if idle:
        params.update(keepalives="1", keepalives_idle=str(idle))
    if "Tcp Keepalive Interval" in given:
        interval = _integer("Tcp Keepalive Interval", given["Tcp Keepalive Interval"], low=0, high=86400)
        if interval:
            params.update(keepalives="1", keepalives_interval=str(interval))
    return params


def _require_auth(value: str) -> str:
    methods = [m.strip().lower() for m in value.split(",") if m.strip()]
    if not methods or any(m.lstrip("!") not in _AUTH_METHODS for m in methods):
        raise ConnectionStringError(
            f"{VARIABLE}: Require Auth must list methods among: " + ", ".join(sorted(_AUTH_METHODS)))
    return ",".join(methods)


def _search_path(value: str) -> str:
    schemas = [s.strip() for s in value.split(",")]
    if not all(re.fullmatch(r'[A-Za-z_][A-Za-z0-9_$]*|"[^"]+"|\$user', s) for s in schemas):
        raise ConnectionStringError(f"{VARIABLE}: Search Path must be a comma-separated list of schema names")
    return ", ".join(schemas)


def _choice(name: str, value: str, values: dict[str, str]) -> str:
    chosen = values.get(value.replace("-", "").replace("_", "").lower())
    if chosen is None:
        raise ConnectionStringError(f"{VARIABLE}: {name} must be one of: " + ", ".join(sorted(set(values.values()))))
    return chosen


def _boolean(name: str, value: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConnectionStringError(f"{VARIABLE}: {name} must be true or false")


def _integer(name: str, value: str, *, low: int, high: int, zero: str | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConnectionStringError(f"{VARIABLE}: {name} must be an integer") from None
    if number == 0 and zero:
        raise ConnectionStringError(f"{VARIABLE}: {name}={zero}")
    if not low <= number <= high:
        raise ConnectionStringError(f"{VARIABLE}: {name} must be between {low} and {high}")
    return number


def _conninfo(params: dict[str, str]) -> str:
    conninfo = make_conninfo("", **params)
    try:
        # libpq's own parser: the last word on every keyword and value shape.
        conninfo_to_dict(conninfo)
    except Exception:
        raise ConnectionStringError(f"{VARIABLE} does not make a valid PostgreSQL connection") from None
    return conninfo
