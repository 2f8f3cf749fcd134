"""libpq's `options` connection parameter, read as libpq reads it: the
`-c name=value` startup settings lifted out of a connection string, then
given back as startup settings (a direct route) or as the statement that
sets them per transaction instead (through a transaction pooler)."""

from __future__ import annotations

import re

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def lift_settings(conninfo: str) -> tuple[str, dict[str, str]]:
    """The connection string without its `-c name=value` startup options, and
    those settings. A transaction-pooling PgBouncer refuses startup options
    (`unsupported startup parameter: options`), and would not keep them per
    client anyway. Any other option is left where it was."""
    params = conninfo_to_dict(conninfo)
    settings: dict[str, str] = {}
    kept: list[str] = []
    words = _option_words(str(params.pop("options", "") or ""))
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = "-c" + words.pop(0)
        name, sep, value = word[2:].partition("=") if word[:2] in ("-c", "--") else ("", "", "")
        if sep and _SETTING_NAME.fullmatch(name):
            settings[name] = value
        else:
            kept.append(word)
    if kept:
        params["options"] = " ".join(_escape_option(word) for word in kept)
    return make_conninfo("", **params), settings


def _option_words(options: str) -> list[str]:
    """libpq's reading of `options`: words split on spaces, a backslash
    keeps the next character (an escaped space stays in the word)."""
    words, word, escaped, started = [], [], False, False
    for char in options:
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\":
            escaped = started = True
        elif char.isspace():
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words


def _escape_option(word: str) -> str:
    return word.replace("\\", "\\\\").replace(" ", "\\ ")


def with_startup_settings(conninfo: str, settings: dict[str, str]) -> str:
    """The connection string with these settings as startup `-c` options,
    after any option it kept (libpq applies them in order: ours win)."""
    params = conninfo_to_dict(conninfo)
    words = [str(params.pop("options", "") or "")]
    words += [_escape_option(f"-c{name}={value}") for name, value in settings.items()]
    options = " ".join(word for word in words if word)
    if options:
        params["options"] = options
    return make_conninfo("", **params)


def settings_statement(settings: dict[str, str]) -> str:
    """One statement that sets each setting for the current transaction only
    (set_config(..., true) reads the value as a startup `-c` would: a list
    for search_path, units for timeouts)."""
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in settings.items())
    return sql.SQL("SELECT {};").format(calls).as_string(None)
