"""The Dockerfile and docker-compose.yml, checked without a Docker engine:
they parse, every path and command they name exists, the payment service
gets exactly the documented deployment's variables (its connection string
as a Docker secret), which point at the services the compose file defines;
the base image is pinned by digest and the packages installed from the
hashed lock; the service and its migrations run as two roles of their own,
get their secrets from files, and stop, restart and are limited as an
operator expects. (tests/e2e/test_image_command.py runs the image's command
in a plain virtual environment.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from devstack.__main__ import build_parser as build_devstack_parser
from payment.__main__ import build_parser
from payment.config import DEFAULT_PORT, Config
from tests.support import dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
# ConnectionStrings__Default is given by its file form, a Docker secret.
DOCUMENTED_VARIABLES = {"ASPNETCORE_URLS", "ConnectionStrings__Default_FILE", "Kafka__BootstrapServers"}
PINNED_BASE = re.compile(r"python:(\d+)\.(\d+)-slim@sha256:[0-9a-f]{64}")
SECRETS_DIR = "/run/secrets/"
# The platform creates the topics (the kafka-topics service), so the service does not.
TOPIC_CREATION_OFF = {"KAFKA_TOPIC_CREATE": "false"}


def dockerfile(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    return dockerfile_instructions(path)


def only(keyword: str, path: Path = ROOT / "Dockerfile") -> str:
    [arguments] = [a for k, a in dockerfile(path) if k == keyword]
    return arguments


def base_image(path: Path = ROOT / "Dockerfile") -> str:
    """FROM's image, with the ARG it names replaced by the ARG's default."""
    image = only("FROM", path)
    name, _, default = only("ARG", path).partition("=")
    assert image == "${" + name + "}", image
    return default


def exec_form(arguments: str) -> list[str]:
    command = json.loads(arguments)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command)
    return command


def healthcheck_command() -> list[str]:
    options, _, command = only("HEALTHCHECK").partition("CMD ")
    assert all(re.fullmatch(r"--[a-z-]+=\S+", option) for option in options.split())
    return exec_form(command)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def assert_payment_command(command: list[str], name: str | None = None):
    """`python -m payment X ...` that the service's own parser accepts."""
    assert command[:3] == ["python", "-m", "payment"], command
    args = build_parser().parse_args(command[3:])
    if name:
        assert args.command == name
    return args


def assert_sandbox_command(command: list[str]):
    """`python -m devstack sandbox ...` that the sandbox's parser accepts."""
    assert command[:4] == ["python", "-m", "devstack", "sandbox"], command
    return build_devstack_parser().parse_args(command[3:])


# --- Dockerfile --------------------------------------------------------------


def test_dockerfile_uses_only_known_instructions():
    known = {"ARG", "FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "HEALTHCHECK", "CMD"}
    assert {keyword for keyword, _ in dockerfile()} <= known
    # The base image's ARG, then a single stage.
    assert [keyword for keyword, _ in dockerfile()][:2] == ["ARG", "FROM"]


@pytest.mark.parametrize("path", [ROOT / "Dockerfile", ROOT / "devstack" / "Dockerfile"],
                         ids=["service", "sandbox"])
def test_base_image_is_a_python_the_service_supports_pinned_by_digest(path):
    match = PINNED_BASE.fullmatch(base_image(path))
    assert match and (int(match[1]), int(match[2])) >= (3, 11)
    assert base_image(path) == base_image()  # one base, moved for both at once


def test_every_copied_path_exists_and_the_runtime_files_are_copied():
    copied = []
    for keyword, arguments in dockerfile():
        if keyword == "COPY":
            *sources, _destination = shlex.split(arguments)
            for source in sources:
                assert (ROOT / source).exists(), source
                copied.append(source.rstrip("/"))
    # Read at run time: the WSGI entry, gunicorn's settings, the OpenAPI
    # document, the schema files and the SQL.
    for needed in ("app.py", "gunicorn.conf.py", "openapi.json", "payment", "schemas", "sql", "requirements.lock"):
        assert needed in copied, needed


def test_the_image_installs_the_locked_runtime_packages_checked_by_hash():
    installs = [a for k, a in dockerfile() if k == "RUN" and a.startswith("pip install")]
    assert installs == ["pip install --require-hashes --no-deps -r requirements.lock"]
    assert not any("requirements-dev" in a or "requirements.txt" in a for _, a in dockerfile())


def test_the_image_runs_as_a_non_root_user():
    assert only("USER") not in ("root", "0")


def test_the_exposed_port_is_the_service_default():
    assert only("EXPOSE") == str(DEFAULT_PORT)


def test_the_entry_command_is_serve():
    assert_payment_command(exec_form(only("CMD")), "serve")


def test_the_health_check_is_the_healthcheck_command():
    assert_payment_command(healthcheck_command(), "healthcheck")


# --- the command line --------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "serve", "relay", "reconcile", "healthcheck"])
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: python -m payment {command}" in capsys.readouterr().out


# --- docker-compose.yml ------------------------------------------------------


def test_compose_runs_postgres_kafka_in_kraft_mode_the_sandbox_and_the_service():
    services = compose()["services"]
    assert set(services) == {"postgres", "kafka", "kafka-topics", "ordering", "migrate", "payment"}
    assert services["postgres"]["image"].startswith("postgres:")
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in kafka["environment"])


def secret_files(name: str) -> dict[str, Path]:
    """/run/secrets/<secret> -> the file compose mounts there, for each secret the service is given."""
    document = compose()
    given = document["services"][name].get("secrets", [])
    return {SECRETS_DIR + secret: ROOT / document["secrets"][secret]["file"] for secret in given}


def environment_of(name: str) -> dict[str, str]:
    """The service's environment as its container sees it: each secret's
    /run/secrets/ path replaced by the file compose mounts there."""
    files = secret_files(name)
    environment = {k: str(v) for k, v in compose()["services"][name]["environment"].items()}
    for variable, value in environment.items():
        if value.startswith(SECRETS_DIR):
            assert value in files, f"{name}: {variable} names a secret the service is not given"
            environment[variable] = str(files[value])
    return environment


def config_of(name: str) -> Config:
    return Config.from_env(environment_of(name))


def test_the_service_gets_the_documented_variables_does_not_migrate_and_creates_no_topic():
    environment = compose()["services"]["payment"]["environment"]
    assert set(environment) == DOCUMENTED_VARIABLES | {"MIGRATE_ON_START"} | set(TOPIC_CREATION_OFF)
    assert {name: environment[name] for name in TOPIC_CREATION_OFF} == TOPIC_CREATION_OFF
    config = config_of("payment")
    assert config.migrate_on_start is False and config.kafka_topic_create is False
    assert config.db_app_role is None  # it grants nothing: it could not


def test_the_release_step_migrates_the_same_database_before_the_service_starts():
    services = compose()["services"]
    migrate, payment = services["migrate"], services["payment"]
    assert_payment_command(migrate["command"], "migrate")
    assert migrate["image"] == payment["image"] and migrate["build"] == "."
    assert set(migrate["environment"]) == DOCUMENTED_VARIABLES | {"DB_APP_ROLE"} | set(TOPIC_CREATION_OFF)
    shared = DOCUMENTED_VARIABLES - {"ConnectionStrings__Default_FILE"}
    assert {k: migrate["environment"][k] for k in shared} == {k: payment["environment"][k] for k in shared}
    owner = conninfo_to_dict(config_of("migrate").database_url)
    app = conninfo_to_dict(config_of("payment").database_url)
    # The same database, as another role.
    assert {k: v for k, v in owner.items() if k not in ("user", "password")} == \
        {k: v for k, v in app.items() if k not in ("user", "password")}
    assert "restart" not in migrate  # it runs once and exits
    assert payment["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # It checks the topics the platform created, so it runs after them.
    assert migrate["depends_on"]["kafka-topics"] == {"condition": "service_completed_successfully"}
    for name, condition in migrate["depends_on"].items():
        if name != "kafka-topics":
            assert condition == {"condition": "service_healthy"}
        assert name in payment["depends_on"]


def test_the_documented_variables_point_at_the_compose_services():
    services = compose()["services"]
    config = config_of("payment")

    database = conninfo_to_dict(config.database_url)
    postgres = services["postgres"]["environment"]
    assert database["host"] == "postgres" and database["port"] == "5432"
    assert database["dbname"] == postgres["POSTGRES_DB"]
    assert config.db_search_path == "bc_payment"

    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{config.kafka_bootstrap_servers}" in advertised.split(",")

    ordering = urlsplit(config.ordering_service_url)
    sandbox = assert_sandbox_command(services["ordering"]["command"])
    assert ordering.hostname == "ordering" and ordering.port == sandbox.port
    assert sandbox.host == "0.0.0.0"
    assert config.reservation_service_url == config.ordering_service_url

    assert f"{config.port}:{config.port}" in services["payment"]["ports"]


def test_compose_builds_the_image_and_runs_its_commands():
    services = compose()["services"]
    for name in ("payment", "migrate"):
        assert services[name]["build"] == "."
        assert (ROOT / services[name]["build"] / "Dockerfile").is_file()
    assert_payment_command(services["payment"]["command"], "serve")
    # The sandbox is development code: an image of its own, never the service's.
    ordering = services["ordering"]
    assert (ROOT / ordering["build"]["context"] / ordering["build"]["dockerfile"]).is_file()
    assert ordering["image"] != services["payment"]["image"]


def test_the_service_image_carries_no_development_code():
    copied = [shlex.split(arguments)[:-1] for keyword, arguments in dockerfile() if keyword == "COPY"]
    sources = {source.rstrip("/") for sources in copied for source in sources}
    assert "payment" in sources
    assert not sources & {"devstack", "tests", "bench", "."}


def test_dependencies_are_services_with_health_checks():
    services = compose()["services"]
    for name, condition in services["payment"]["depends_on"].items():
        assert name in services
        if name in ("kafka-topics", "migrate"):
            # One-shot jobs: the service starts once they have finished, and only if they succeeded.
            assert condition == {"condition": "service_completed_successfully"}
        else:
            assert condition == {"condition": "service_healthy"}
            assert services[name]["healthcheck"]["test"][0] == "CMD"


def topic_commands() -> list[list[str]]:
    """The kafka-topics service's commands, each split like a shell would."""
    command = compose()["services"]["kafka-topics"]["command"]
    assert command[:2] == ["bash", "-ec"] and len(command) == 3
    return [shlex.split(part) for part in command[2].split("&&")]


def option(arguments: list[str], name: str) -> str:
    return arguments[arguments.index(name) + 1]


def test_the_platform_creates_the_services_topics_before_it_starts():
    services = compose()["services"]
    topics = services["kafka-topics"]
    assert topics["image"] == services["kafka"]["image"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["payment"]["depends_on"]["kafka-topics"] == {"condition": "service_completed_successfully"}

    config = config_of("payment")
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    created = set()
    for arguments in topic_commands():
        assert arguments[0] == "/opt/kafka/bin/kafka-topics.sh"
        # Idempotent: a restart of the stack finds them and goes on.
        assert "--create" in arguments and "--if-not-exists" in arguments
        assert f"PLAINTEXT://{option(arguments, '--bootstrap-server')}" in advertised.split(",")
        assert int(option(arguments, "--partitions")) >= 1
        # One broker in this stack: the factor cannot be above it.
        assert option(arguments, "--replication-factor") == "1"
        created.add(option(arguments, "--topic"))
    assert created == set(config.topics) == {config.topic_succeeded, config.topic_failed,
                                              config.topic_refunded, config.topic_refund_failed}


# --- least privilege, secrets, stopping, limits ------------------------------


def roles_script_defaults() -> dict[str, str]:
    """The role names deploy/postgres-init/10-payment-roles.sh gives psql by default."""
    text = (ROOT / "deploy" / "postgres-init" / "10-payment-roles.sh").read_text()
    return dict(re.findall(r'-v (owner|app)="\$\{PAYMENT_(?:OWNER|APP)_ROLE:-([a-z_]+)\}"', text))


def test_migrations_run_as_the_owner_and_the_service_as_its_own_role():
    services = compose()["services"]
    roles = roles_script_defaults()
    assert roles == {"owner": "payment_owner", "app": "payment_app"}
    migrate, payment = config_of("migrate"), config_of("payment")
    assert conninfo_to_dict(migrate.database_url)["user"] == roles["owner"]
    assert conninfo_to_dict(payment.database_url)["user"] == roles["app"]
    assert migrate.db_app_role == roles["app"]
    # Neither is the superuser the image creates.
    superuser = services["postgres"]["environment"]["POSTGRES_USER"]
    assert superuser not in roles.values()
    # The roles are made by the init script, mounted where the image runs it.
    assert "./deploy/postgres-init:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]


def test_the_init_script_gives_psql_the_passwords_of_the_connection_strings(tmp_path):
    """10-payment-roles.sh with a stand-in psql that records what it is given."""
    (tmp_path / "psql").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n')
    (tmp_path / "psql").chmod(0o755)
    record = tmp_path / "record"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "RECORD": str(record),
           "POSTGRES_USER": "postgres", "POSTGRES_DB": "ticketing",
           "PAYMENT_SECRETS_DIR": str(ROOT / "deploy" / "secrets")}
    subprocess.run(["bash", str(ROOT / "deploy" / "postgres-init" / "10-payment-roles.sh")], env=env, check=True)
    given = record.read_text().splitlines()
    variables = dict(given[i + 1].split("=", 1) for i, arg in enumerate(given) if arg == "-v")
    for role, secret in (("owner", "payment_owner_connection"), ("app", "payment_app_connection")):
        password = conninfo_to_dict(Config.from_env({
            "ConnectionStrings__Default_FILE": str(ROOT / "deploy" / "secrets" / secret),
            "Kafka__BootstrapServers": "kafka:9092"}).database_url)["password"]
        assert variables[f"{role}_password"] == password and len(password) >= 16
    assert variables["db"] == "ticketing" and variables["ON_ERROR_STOP"] == "1"
    assert given[given.index("-f") + 1].endswith("deploy/postgres-init/payment-roles.psql")


def test_secrets_reach_the_containers_as_docker_secrets_never_inline():
    document = compose()
    for name, secret in document["secrets"].items():
        assert set(secret) == {"file"} and (ROOT / secret["file"]).is_file(), name
    for name, service in document["services"].items():
        environment = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        for variable, value in environment.items():
            assert not re.search(r"password=", value, re.IGNORECASE), f"{name}: {variable} holds a password"
            assert not re.search(r"PASSWORD|SECRET|API_KEY|ConnectionStrings__", variable) or \
                variable.endswith("_FILE"), f"{name}: {variable} is a secret given inline"
            if variable.endswith("_FILE"):
                assert value.startswith(SECRETS_DIR) and value[len(SECRETS_DIR):] in service["secrets"]
    assert document["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == \
        SECRETS_DIR + "postgres_password"


def graceful_timeout() -> int:
    [value] = re.findall(r"^graceful_timeout = (\d+)$", (ROOT / "gunicorn.conf.py").read_text(), re.MULTILINE)
    return int(value)


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_a_stop_waits_longer_than_gunicorns_graceful_timeout():
    payment = compose()["services"]["payment"]
    # Docker's default of 10 s would kill requests gunicorn is still letting finish.
    assert seconds(payment["stop_grace_period"]) > graceful_timeout() >= 10


LONG_RUNNING = ("postgres", "kafka", "ordering", "payment")


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_restart_and_are_limited(name):
    service = compose()["services"][name]
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    limits = service["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0
    assert re.fullmatch(r"\d+[mg]", limits["memory"])


def test_the_service_gets_at_least_two_workers_worth_of_cpu_and_memory():
    limits = compose()["services"]["payment"]["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) >= 2
    amount, unit = int(limits["memory"][:-1]), limits["memory"][-1]
    assert amount * (1024 if unit == "g" else 1) >= 256


def test_one_shot_jobs_do_not_restart():
    services = compose()["services"]
    for name in ("migrate", "kafka-topics"):
        assert services[name].get("restart", "no") == "no"
