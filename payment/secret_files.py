"""Secrets from files: every setting that holds a secret may be given as
`NAME_FILE`, the path of a file holding its value, the convention of the
official database images for Docker and Kubernetes secrets
(`/run/secrets/...`). The value then never sits in the environment, where
`docker inspect` and the process table show it.

The file's content is the value, less one final line ending (`\\n` or
`\\r\\n`, as an editor or `echo` leaves it; only one: anything else is the
value's own). Giving both forms, or a file that is missing, unreadable,
empty or not UTF-8, is a configuration error that names the variable, never
the path or what the file holds.
"""

from __future__ import annotations

from payment.outbox import kafka_settings

SUFFIX = "_FILE"

# Every setting that holds a secret, by its variable's name: the one place
# to add a new one. The Kafka client properties that hold a secret (SASL and
# SSL key passwords, OAuth client secrets...) are recognised by their names,
# in both spellings (`KAFKA_SASL_PASSWORD`, `Kafka__SaslPassword`).
SECRET_VARIABLES = frozenset({
    "DATABASE_URL",
    "ConnectionStrings__Default",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "AUTH_JWT_HS256_SECRET",
})

# A secret is a password, a key or a connection string: far below this. A
# larger file is a wrong path (a log, a device), not a secret.
MAX_SECRET_BYTES = 64 * 1024


class SecretFileError(ValueError):
    """A NAME_FILE variable that cannot be used; the message names it."""


def is_secret_variable(name: str) -> bool:
    return name in SECRET_VARIABLES or kafka_settings.is_secret_variable(name)


def resolve(env: dict[str, str]) -> dict[str, str]:
    """`env` with every secret's NAME_FILE replaced by NAME, read from the
    file. An empty NAME_FILE is unset, as an empty NAME is."""
    resolved = dict(env)
    for file_variable in sorted(env):
        if not is_file_of_secret(file_variable):
            continue
        name = file_variable[: -len(SUFFIX)]
        path = resolved.pop(file_variable)
        if not path:
            continue
        if env.get(name):
            raise SecretFileError(f"{name} and {file_variable} are both set: give one or the other")
        resolved[name] = read(file_variable, path)
    return resolved


def read(file_variable: str, path: str) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        # strerror ("No such file or directory", "Permission denied"), never the path.
        raise SecretFileError(f"{file_variable}: the file it names cannot be read "
                              f"({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretFileError(f"{file_variable}: the file it names is over {MAX_SECRET_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError(f"{file_variable}: the file it names is not UTF-8 text") from None
    value = trimmed(text)
    if not value:
        raise SecretFileError(f"{file_variable}: the file it names is empty")
    return value


def trimmed(text: str) -> str:
    """The text less one final line ending, `\\r\\n` or `\\n`."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def is_file_of_secret(variable: str) -> bool:
    """Whether `variable` is the NAME_FILE form of a secret setting."""
    return variable.endswith(SUFFIX) and is_secret_variable(variable[: -len(SUFFIX)])
