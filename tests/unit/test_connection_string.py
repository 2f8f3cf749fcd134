"""ConnectionStrings__Default as operators write it for Npgsql: each key's
mapping to libpq or to the service's settings, the keys accepted and
ignored, the ones refused, and no value ever in a message."""

from __future__ import annotations

import re

import pytest
from psycopg.conninfo import conninfo_to_dict

from payment.config import Config, ConfigError, redact_conninfo
from payment.db import connection_string
from payment.db.connection_string import ConnectionStringError, parse

BASE = "Host=db;Database=ticketing;Username=app;Password=pw"
ENV = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "ORDERING_SERVICE_URL": "http://ordering:5002"}
PRODUCTION = ("Host=127.0.0.1;Port=5432;Database=test_settings;Username=postgres;Password=x;SearchPath=bc_payment;"
              "Pooling=true;Minimum Pool Size=1;Maximum Pool Size=50;Timeout=5;Command Timeout=2;SSL Mode=Prefer;"
              "Trust Server Certificate=true;Include Error Detail=true;Application Name=payment;Keepalive=30")


def libpq(text: str) -> dict:
    return conninfo_to_dict(parse(text).conninfo)


def config(text: str, **env) -> Config:
    return Config.from_env({**ENV, "ConnectionStrings__Default": text, **env})


def test_the_production_string_starts_the_service_configuration():
    settings = config(PRODUCTION)
    assert conninfo_to_dict(settings.database_url) == {
        "host": "127.0.0.1", "port": "5432", "dbname": "test_settings", "user": "postgres", "password": "x",
        "sslmode": "prefer", "connect_timeout": "5", "application_name": "payment",
        "keepalives": "1", "keepalives_idle": "30",
    }
    assert (settings.db_pool_min, settings.db_pool_max, settings.db_timeout) == (1, 50, 2.0)
    assert settings.db_search_path == "bc_payment"
    assert settings.db_ignored_keys == ("Include Error Detail",)


@pytest.mark.parametrize("written, expected", [
    ("Disable", "disable"), ("Allow", "allow"), ("Prefer", "prefer"), ("Require", "require"),
    ("VerifyCA", "verify-ca"), ("VerifyFull", "verify-full"), ("verifyfull", "verify-full"),
    ("VERIFYCA", "verify-ca"), ("verify-full", "verify-full"),
])
def test_ssl_mode_values_become_libpq_values(written, expected):
    assert libpq(f"{BASE};SSL Mode={written}")["sslmode"] == expected
    assert libpq(f"{BASE};SslMode={written}")["sslmode"] == expected


@pytest.mark.parametrize("key, keyword", [
    ("Root Certificate", "sslrootcert"), ("SSL Certificate", "sslcert"), ("SSL Key", "sslkey"),
    ("SSL Password", "sslpassword"), ("Passfile", "passfile"), ("Application Name", "application_name"),
    ("Client Encoding", "client_encoding"), ("Kerberos Service Name", "krbsrvname"), ("Krbsrvname", "krbsrvname"),
    ("Database", "dbname"), ("DB", "dbname"), ("User Id", "user"), ("UID", "user"), ("User Name", "user"),
    ("PWD", "password"),
])
def test_keys_passed_to_libpq_as_written(key, keyword):
    assert libpq(f"Host=db;{key}=/etc/x/value.pem")[keyword] == "/etc/x/value.pem"


@pytest.mark.parametrize("key, written, keyword, expected", [
    ("Target Session Attributes", "primary", "target_session_attrs", "primary"),
    ("Target Session Attributes", "read-write", "target_session_attrs", "read-write"),
    ("Target Session Attributes", "PreferStandby", "target_session_attrs", "prefer-standby"),
    ("Channel Binding", "Require", "channel_binding", "require"),
    ("GSS Encryption Mode", "Disable", "gssencmode", "disable"),
    ("SSL Negotiation", "Direct", "sslnegotiation", "direct"),
    ("Require Auth", "SCRAM-SHA-256", "require_auth", "scram-sha-256"),
    ("Load Balance Hosts", "true", "load_balance_hosts", "random"),
    ("Timeout", "7", "connect_timeout", "7"),
    ("Keepalive", "45", "keepalives_idle", "45"),
    ("Tcp Keepalive", "true", "keepalives", "1"),
    ("Tcp Keepalive Time", "20", "keepalives_idle", "20"),
    ("Tcp Keepalive Interval", "5", "keepalives_interval", "5"),
])
def test_keys_with_a_libpq_meaning(key, written, keyword, expected):
    assert libpq(f"Host=a,b;{key}={written}")[keyword] == expected


def test_off_values_leave_libpq_defaults():
    params = libpq(f"{BASE};Keepalive=0;Tcp Keepalive=false;Load Balance Hosts=false")
    assert not {"keepalives", "keepalives_idle", "load_balance_hosts"} & set(params)


def test_tcp_keepalive_time_wins_over_keepalive():
    assert libpq(f"{BASE};Keepalive=60;Tcp Keepalive Time=15")["keepalives_idle"] == "15"


@pytest.mark.parametrize("hosts, port, expected_hosts, expected_ports", [
    ("db", None, "db", "5432"),
    ("db", "6432", "db", "6432"),
    ("db:6543", None, "db", "6543"),
    ("a,b", "6432", "a,b", "6432,6432"),
    ("a:5433,b", "6432", "a,b", "5433,6432"),
    ("a,b", "5433,5434", "a,b", "5433,5434"),
    ("[::1]:5433,10.0.0.2", None, "::1,10.0.0.2", "5433,5432"),
    ("/var/run/postgresql", "5432", "/var/run/postgresql", "5432"),
])
def test_hosts_and_ports_become_libpq_lists(hosts, port, expected_hosts, expected_ports):
    params = libpq(f"Host={hosts}" + (f";Port={port}" if port else ""))
    assert (params["host"], params["port"]) == (expected_hosts, expected_ports)


def test_keys_match_without_regard_to_case_or_spaces():
    params = libpq("SERVER=db;database=x;userid=u;sslmode=require;applicationname=app;MaxPoolSize=3")
    assert (params["host"], params["user"], params["sslmode"], params["application_name"]) == (
        "db", "u", "require", "app")
    assert parse("Host=db;MinPoolSize=2;maximum pool size=3").pool_min == 2


def test_a_quoted_value_may_hold_a_semicolon():
    assert libpq('Host=db;Password="a;b=c";Application Name=\'x;y\'')["password"] == "a;b=c"


def test_pool_sizes_and_command_timeout_become_the_service_settings():
    settings = config(f"{BASE};Minimum Pool Size=2;Maximum Pool Size=20;Command Timeout=5")
    assert (settings.db_pool_min, settings.db_pool_max, settings.db_timeout) == (2, 20, 5.0)


def test_the_service_variables_win_over_the_connection_string():
    settings = config(f"{BASE};Minimum Pool Size=2;Maximum Pool Size=20;Command Timeout=5",
                      DB_POOL_MIN="0", DB_POOL_MAX="4", DB_TIMEOUT_S="1.5")
    assert (settings.db_pool_min, settings.db_pool_max, settings.db_timeout) == (0, 4, 1.5)


def test_without_pool_keys_the_defaults_stay():
    settings = config(BASE)
    assert (settings.db_pool_min, settings.db_pool_max, settings.db_timeout) == (1, 8, 2.0)
    assert settings.db_search_path is None and settings.db_ignored_keys == ()


def test_pooling_true_is_what_the_service_does_and_false_is_ignored():
    assert parse(f"{BASE};Pooling=true").ignored == ()
    assert parse(f"{BASE};Pooling=false").ignored == ("Pooling",)


def test_search_path_is_kept_apart_from_the_conninfo():
    for key in ("SearchPath", "Search Path", "searchpath"):
        settings = parse(f"{BASE};{key}=bc_payment, public")
        assert settings.search_path == "bc_payment, public"
        assert "options" not in conninfo_to_dict(settings.conninfo)


IGNORED = ["Enlist", "Connection Lifetime", "Connection Idle Lifetime", "Connection Pruning Interval",
           "Max Auto Prepare", "Auto Prepare Min Usages", "No Reset On Close", "Include Error Detail",
           "Log Parameters", "Server Compatibility Mode", "Encoding", "Timezone", "Multiplexing",
           "Write Coalescing Buffer Threshold Bytes", "Read Buffer Size", "Write Buffer Size",
           "Socket Receive Buffer Size", "Socket Send Buffer Size", "Internal Command Timeout",
           "Cancellation Timeout", "Host Recheck Seconds", "Persist Security Info",
           "Check Certificate Revocation", "Include Realm", "Integrated Security", "Options",
           "Array Nullability Mode", "Load Table Composites", "EF Template Database", "EF Admin Database"]


@pytest.mark.parametrize("key", IGNORED)
def test_npgsql_keys_without_a_meaning_here_are_accepted_and_named(key):
    settings = parse(f"{BASE};{key}=1")
    assert settings.ignored == (key,)
    assert conninfo_to_dict(settings.conninfo) == conninfo_to_dict(parse(BASE).conninfo)


@pytest.mark.parametrize("text, message", [
    ("Host=db;Bogus=1", "unsupported key 'bogus'"),
    ("Host=db;Ssl Modes=Require", "unsupported key 'ssl modes'"),
    ("Port=5432", "has no Host"),
    ("Host=db;SSL Mode=Sometimes", "SSL Mode must be one of: allow, disable, prefer, require, verify-ca, verify-full"),
    ("Host=db;Target Session Attributes=prefer-primary", "Target Session Attributes must be one of"),
    ("Host=db;Trust Server Certificate=true;SSL Mode=VerifyFull", "Trust Server Certificate=true contradicts"),
    ("Host=db;Trust Server Certificate=true;Root Certificate=/ca.pem", "contradicts a Root Certificate"),
    ("Host=db;Trust Server Certificate=yes", "Trust Server Certificate must be true or false"),
    ("Host=db;Pooling=maybe", "Pooling must be true or false"),
    ("Host=db;Maximum Pool Size=0", "Maximum Pool Size must be between 1 and 1000"),
    ("Host=db;Minimum Pool Size=-1", "Minimum Pool Size must be between 0 and 1000"),
    ("Host=db;Minimum Pool Size=9;Maximum Pool Size=3", "Minimum Pool Size is above Maximum Pool Size"),
    ("Host=db;Command Timeout=0", "Command Timeout=0 (no limit) is not accepted"),
    ("Host=db;Command Timeout=soon", "Command Timeout must be an integer"),
    ("Host=db;Timeout=0", "Timeout must be between 1 and 1024"),
    ("Host=db;Keepalive=-5", "Keepalive must be between 0 and 86400"),
    ("Host=db;Port=http", "Port must be an integer"),
    ("Host=a,b,c;Port=1,2", "Port must be one port, or one per host"),
    ("Host=db:x", "Host must be host or host:port"),
    ("Host=pg:5432:1", "Host must be host or host:port"),
    ("Host=db;Require Auth=magic", "Require Auth must list methods"),
    ("Host=db;Search Path=x; drop table y", "not key=value"),
    ("Host=db;Search Path=bc payment", "Search Path must be a comma-separated list of schema names"),
    ("Host=db;novalue", "an entry that is not key=value"),
])
def test_refusals_name_the_key(text, message):
    with pytest.raises(ConnectionStringError, match=re.escape(message)):
        parse(text)


def test_a_refusal_stops_the_configuration_naming_the_variable():
    with pytest.raises(ConfigError, match="ConnectionStrings__Default: SSL Mode must be one of"):
        config(f"{BASE};SSL Mode=Sometimes")


@pytest.mark.parametrize("text", [
    "Password=hunter2;SSL Password=hunter2;Host=db;SSL Mode=hunter2",
    "Host=db;Password=hunter2;Timeout=hunter2",
    "Host=db;Password=hunter2;hunter2",
    "Host=db;SSL Password=hunter2;Trust Server Certificate=hunter2",
])
def test_no_message_quotes_a_value(text):
    with pytest.raises(ConnectionStringError) as raised:
        parse(text)
    assert "hunter2" not in str(raised.value)


def test_secrets_are_redacted_and_out_of_the_repr():
    settings = config(f"{BASE.replace('pw', 'hunter2')};SSL Password=hunter3;SSL Key=/k.pem")
    redacted = settings.redacted_database_url()
    assert "hunter2" not in redacted and "hunter3" not in redacted and "/k.pem" in redacted
    assert "hunter2" not in repr(settings.db_ignored_keys)
    assert "hunter2" not in redact_conninfo(settings.database_url)


def test_every_documented_key_has_a_kind():
    """The table of docs/configuration.md and the parser agree: each known key is mapped or ignored."""
    for name in connection_string._SPELLINGS:
        text = f"Host=db;{name}=true" if name != "Host" else "Host=db"
        try:
            parse(text)
        except ConnectionStringError as exc:
            assert "unsupported key" not in str(exc), name
