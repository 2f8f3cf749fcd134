"""The Dockerfile and docker-compose.yml, checked without a Docker engine:
they parse, every path and command they name exists, and the payment
service gets exactly the documented deployment's variables, which point at
the services the compose file defines. (tests/e2e/test_image_command.py runs
the image's command in a plain virtual environment.)"""

from __future__ import annotations

import json
import re
import shlex
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
DOCUMENTED_VARIABLES = {"ASPNETCORE_URLS", "ConnectionStrings__Default", "Kafka__BootstrapServers"}
# The platform creates the topics (the kafka-topics service), so the service does not.
TOPIC_CREATION_OFF = {"KAFKA_TOPIC_CREATE": "false"}


def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(ROOT / "Dockerfile")


def only(keyword: str) -> str:
    [arguments] = [a for k, a in dockerfile() if k == keyword]
    return arguments


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
    known = {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "HEALTHCHECK", "CMD"}
    assert {keyword for keyword, _ in dockerfile()} <= known
    assert dockerfile()[0][0] == "FROM"


def test_base_image_is_a_python_the_service_supports():
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", only("FROM"))
    assert match and (int(match[1]), int(match[2])) >= (3, 11)


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
    for needed in ("app.py", "gunicorn.conf.py", "openapi.json", "payment", "schemas", "sql", "requirements.txt"):
        assert needed in copied, needed


def test_the_image_installs_the_runtime_requirements_only():
    assert "pip install -r requirements.txt" in [a for k, a in dockerfile() if k == "RUN"]
    assert not any("requirements-dev" in a for _, a in dockerfile())


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


def test_the_service_gets_the_documented_variables_does_not_migrate_and_creates_no_topic():
    environment = compose()["services"]["payment"]["environment"]
    assert set(environment) == DOCUMENTED_VARIABLES | {"MIGRATE_ON_START"} | set(TOPIC_CREATION_OFF)
    assert {name: environment[name] for name in TOPIC_CREATION_OFF} == TOPIC_CREATION_OFF
    config = Config.from_env({k: str(v) for k, v in environment.items()})
    assert config.migrate_on_start is False and config.kafka_topic_create is False


def test_the_release_step_migrates_the_same_database_before_the_service_starts():
    services = compose()["services"]
    migrate, payment = services["migrate"], services["payment"]
    assert_payment_command(migrate["command"], "migrate")
    assert migrate["image"] == payment["image"] and migrate["build"] == "."
    assert migrate["environment"] == {k: v for k, v in payment["environment"].items()
                                      if k in DOCUMENTED_VARIABLES or k in TOPIC_CREATION_OFF}
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
    config = Config.from_env({k: str(v) for k, v in services["payment"]["environment"].items()})

    database = conninfo_to_dict(config.database_url)
    postgres = services["postgres"]["environment"]
    assert database["host"] == "postgres" and database["port"] == "5432"
    assert (database["dbname"], database["user"], database["password"]) == (
        postgres["POSTGRES_DB"], postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])

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

    config = Config.from_env({k: str(v) for k, v in services["payment"]["environment"].items()})
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
    assert created == {config.topic_succeeded, config.topic_failed}
