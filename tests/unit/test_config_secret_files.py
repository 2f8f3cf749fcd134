"""Secrets from files (payment/secret_files.py): every secret setting's
NAME_FILE form, through Config.from_env, with real files."""

from __future__ import annotations

import re

import pytest

from payment.config import Config, ConfigError
from payment.secret_files import SECRET_VARIABLES, resolve

BASE = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
}
SASL = {"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "payment"}
CANARY = "canary-3f9c1e5b2d4a6f8e0c1b3d5f7a9c1e2d"


@pytest.fixture
def secret(tmp_path):
    """secret(content) -> the path of a file holding it (bytes or text, written as is)."""
    made = []

    def write(content: str | bytes, name: str = "secret") -> str:
        path = tmp_path / f"{name}-{len(made)}"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        made.append(path)
        return str(path)

    return write


HS256 = "hs256-from-a-file-" + "7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c1e"


@pytest.mark.parametrize("variable, value, env, field, expected", [
    ("DATABASE_URL", "postgresql://app:s3cret@db:5432/ticketing", {"DATABASE_URL": ""},
     lambda c: c.database_url, "postgresql://app:s3cret@db:5432/ticketing"),
    ("ConnectionStrings__Default", "Host=db;Database=ticketing;Username=app;Password=s3cret;SearchPath=bc_payment",
     {"DATABASE_URL": ""}, lambda c: (c.database_url, c.db_search_path),
     ("dbname=ticketing user=app password=s3cret host=db port=5432", "bc_payment")),
    ("STRIPE_API_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", {"PAYMENT_GATEWAY": "stripe"},
     lambda c: c.stripe_api_key, "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("AUTH_JWT_HS256_SECRET", HS256, {}, lambda c: c.auth_hs256_secret, HS256),
    ("KAFKA_SASL_PASSWORD", "kafka-s3cret", SASL, lambda c: c.kafka_settings["sasl.password"], "kafka-s3cret"),
    ("Kafka__SaslPassword", "kafka-s3cret", SASL, lambda c: c.kafka_settings["sasl.password"], "kafka-s3cret"),
])
def test_each_secret_setting_may_come_from_a_file(secret, variable, value, env, field, expected):
    from_file = Config.from_env({**BASE, **env, f"{variable}_FILE": secret(value + "\n")})
    assert field(from_file) == expected
    # The same as the variable itself gives.
    assert field(Config.from_env({**BASE, **env, variable: value})) == expected


def test_the_stripe_webhook_secret_may_come_from_a_file(secret):
    env = resolve({**BASE, "STRIPE_WEBHOOK_SECRET_FILE": secret("whsec_abc123\n")})
    assert env["STRIPE_WEBHOOK_SECRET"] == "whsec_abc123" and "STRIPE_WEBHOOK_SECRET_FILE" not in env
    stripe = {**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": "sk_test_abc"}
    config = Config.from_env({**stripe, "STRIPE_WEBHOOK_SECRET_FILE": secret("whsec_old,whsec_new\n")})
    assert config.stripe_webhook_secrets == ("whsec_old", "whsec_new")


def test_the_declared_secret_settings():
    assert SECRET_VARIABLES == {"DATABASE_URL", "ConnectionStrings__Default", "STRIPE_API_KEY",
                                "STRIPE_WEBHOOK_SECRET", "AUTH_JWT_HS256_SECRET"}


@pytest.mark.parametrize("content, value", [
    (HS256, HS256),
    (HS256 + "\n", HS256),
    (HS256 + "\r\n", HS256),
    # Only one line ending goes: the rest is the value's own.
    (HS256 + "\n\n", HS256 + "\n"),
    (HS256 + " \n", HS256 + " "),
    (" " + HS256 + "\n", " " + HS256),
])
def test_the_content_is_used_less_one_final_line_ending(secret, content, value):
    config = Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET_FILE": secret(content)})
    assert config.auth_hs256_secret == value


def test_a_kafka_file_form_sets_the_property_not_a_property_named_file(secret):
    config = Config.from_env({**BASE, **SASL, "KAFKA_SASL_PASSWORD_FILE": secret("kafka-s3cret\n")})
    assert config.kafka_settings["sasl.password"] == "kafka-s3cret"
    assert not any(name.endswith("file") for name in config.kafka_settings)


@pytest.mark.parametrize("variable", ["DATABASE_URL", "AUTH_JWT_HS256_SECRET", "Kafka__SaslPassword",
                                      "KAFKA_SASL_PASSWORD", "STRIPE_API_KEY"])
def test_both_forms_are_refused_naming_both_never_the_value(secret, variable):
    env = {**BASE, **SASL, "PAYMENT_GATEWAY": "simulator", variable: CANARY,
           f"{variable}_FILE": secret(CANARY + "\n")}
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env)
    message = str(raised.value)
    assert message == f"{variable} and {variable}_FILE are both set: give one or the other"
    assert CANARY not in message


def test_a_missing_file_is_refused_naming_the_variable_not_the_path(tmp_path):
    path = str(tmp_path / f"missing-{CANARY}")
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, "DATABASE_URL": "", "DATABASE_URL_FILE": path})
    assert str(raised.value) == "DATABASE_URL_FILE: the file it names cannot be read (No such file or directory)"
    assert CANARY not in str(raised.value)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("STRIPE_API_KEY_FILE: the file it names cannot be read (Is a "
                                                    "directory)")):
        Config.from_env({**BASE, "STRIPE_API_KEY_FILE": str(tmp_path)})


def test_a_path_that_leads_nowhere_is_refused(secret):
    # Unreadable whoever runs it (root reads any file whatever its mode).
    with pytest.raises(ConfigError, match=re.escape("AUTH_JWT_HS256_SECRET_FILE: the file it names cannot be read "
                                                    "(Not a directory)")):
        Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET_FILE": secret(CANARY) + "/secret"})


@pytest.mark.parametrize("content, why", [
    (b"", "is empty"),
    (b"\n", "is empty"),
    (b"\xff\xfe" + CANARY.encode(), "is not UTF-8 text"),
    (b"x" * (64 * 1024 + 1), "is over 64 KiB"),
])
def test_a_file_that_holds_no_usable_secret_is_refused(secret, content, why):
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET_FILE": secret(content)})
    assert str(raised.value) == f"AUTH_JWT_HS256_SECRET_FILE: the file it names {why}"


def test_a_bad_value_from_a_file_is_judged_as_if_set_directly_never_shown(secret):
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET_FILE": secret("short-" + CANARY[:8] + "\n")})
    assert str(raised.value) == "AUTH_JWT_HS256_SECRET must be at least 32 bytes"
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, "STRIPE_API_KEY_FILE": secret(CANARY + "\n")})
    assert CANARY not in str(raised.value)


def test_an_empty_file_variable_is_unset_and_other_file_variables_are_not_read(secret):
    config = Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET_FILE": "", "PORT_FILE": "/nonexistent"})
    assert config.auth_hs256_secret is None and config.port == 5004


def test_a_secret_read_from_a_file_is_not_in_the_configurations_repr(secret):
    config = Config.from_env({**BASE, **SASL, "AUTH_JWT_HS256_SECRET_FILE": secret(HS256 + "\n"),
                              "KAFKA_SASL_PASSWORD_FILE": secret(CANARY + "\n")})
    assert HS256 not in repr(config) and CANARY not in repr(config)
    assert config.redacted_kafka_settings()["sasl.password"] == "***"
