"""docker-compose.yml and the Dockerfile: parsed by a real compose implementation (Debian's
docker-compose, which needs no Docker engine for `config`) and checked against the rules of
the issue: pinned images, healthchecks, health-gated start order, only Grafana published,
state in named volumes, secrets required from .env, mounted files present.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
import zipfile

import monitoring_helpers as mh
import pytest

REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "TRADEWATCH_DB_PASSWORD", "EXPORTER_DB_PASSWORD",
                    "GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "MT5_BRIDGE_TOKEN")
# An exact version: at least major.minor.patch (v-prefixed or not), or a Debian point release.
PINNED_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$")
STATEFUL = {"postgres": "/var/lib/postgresql/data", "prometheus": "/prometheus", "alertmanager": "/alertmanager",
            "loki": "/loki", "grafana": "/var/lib/grafana", "mt5": "/data", "bot": "/app/data"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return mh.load_yaml(mh.COMPOSE_FILE)


def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory):
    """Stands in for .env, so a developer's own .env cannot make these tests pass or fail."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("", encoding="utf-8")
    return path


def docker_compose(env_file, *args: str, secrets: dict[str, str] | None = None):
    """`docker-compose -f docker-compose.yml ARGS` seeing only PATH and the given variables."""
    binary = mh.find_tool("docker-compose", "apt-get install docker-compose (Debian), or make sysdeps")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(secrets or {})}
    return mh.run([binary, "--project-directory", str(mh.REPO), "--env-file", str(env_file),
                   "-f", str(mh.COMPOSE_FILE), *args], cwd=mh.REPO, env=env)


def dummy_secrets() -> dict[str, str]:
    return {name: f"dummy-{name.lower()}" for name in REQUIRED_SECRETS}


def test_docker_compose_parses_the_file(compose, empty_env_file):
    result = docker_compose(empty_env_file, "config", "-q", secrets=dummy_secrets())
    assert result.returncode == 0, result.stdout + result.stderr
    result = docker_compose(empty_env_file, "--profile", "wine", "config", "--services", secrets=dummy_secrets())
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(result.stdout.split()) == set(services(compose))


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_docker_compose_refuses_to_run_without_each_secret(secret, empty_env_file):
    secrets = dummy_secrets()
    del secrets[secret]
    result = docker_compose(empty_env_file, "config", "-q", secrets=secrets)
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stdout + result.stderr


def test_secrets_are_only_ever_required_never_defaulted():
    text = mh.COMPOSE_FILE.read_text(encoding="utf-8")
    for secret in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is not used"
        for suffix in uses:
            assert suffix.startswith(":?"), f"${{{secret}{suffix}}} must be required (:?), never defaulted"
    for name, value in re.findall(r"^\s*(\w*(?:PASSWORD|TOKEN|SECRET)\w*):\s*(\S.*)$", text, re.M):
        assert value.startswith("${"), f"{name} has a literal value"


def test_every_image_is_pinned_to_an_exact_version(compose):
    for name, service in services(compose).items():
        image = service.get("image", "")
        assert ":" in image and "@" not in image.split(":")[0], f"{name}: image {image!r} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert PINNED_TAG.match(tag), f"{name}: {image!r} is not pinned to an exact version"
    for dockerfile in (mh.REPO / "Dockerfile", mh.REPO / "deploy" / "wine" / "Dockerfile"):
        for image in re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(encoding="utf-8"), re.M):
            assert PINNED_TAG.match(image.rsplit(":", 1)[-1]), f"{dockerfile.name}: FROM {image}"


def test_long_running_services_have_healthchecks_and_restart_policies(compose):
    for name, service in services(compose).items():
        if is_one_shot(service):
            assert "healthcheck" not in service, f"one-shot {name} needs no healthcheck"
            continue
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_start_order_waits_for_health(compose):
    all_services = services(compose)
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must use the long form with a condition"
        for dependency, rule in depends.items():
            expected = ("service_completed_successfully" if is_one_shot(all_services[dependency])
                        else "service_healthy")
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
    for one_shot in [n for n, s in all_services.items() if is_one_shot(s)]:
        assert any(one_shot in s.get("depends_on", {}) for s in all_services.values()), one_shot


def test_only_grafana_publishes_a_port_and_on_loopback_by_default(compose):
    published = {name for name, s in services(compose).items() if s.get("ports")}
    assert published == {"grafana"}
    assert services(compose)["grafana"]["ports"] == ["${GRAFANA_BIND:-127.0.0.1}:${GRAFANA_PORT:-3000}:3000"]
    for name, service in services(compose).items():
        assert service.get("network_mode") in (None, "none"), f"{name} must not share the host network"


def test_the_bridge_and_the_database_stay_on_the_internal_network(compose):
    assert compose["networks"]["backend"].get("internal") is True
    for name in ("mt5", "postgres", "exporter", "prometheus", "loki"):
        assert services(compose)[name]["networks"] == ["backend"], name


def test_state_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
    for name, path in STATEFUL.items():
        mounts = [v for v in services(compose)[name].get("volumes", []) if not v.startswith((".", "/"))]
        assert any(v.split(":")[1] == path for v in mounts), f"{name}: {path} is not a named volume"


def test_every_mounted_file_exists(compose):
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (mh.REPO / source).exists(), f"{name}: {source} does not exist"
        build = service.get("build")
        if build:
            assert (mh.REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_python_services_run_the_agreed_commands(compose):
    s = services(compose)
    assert s["bot"]["command"] == ["python", "-m", "bot", "run"]
    assert s["exporter"]["command"] == ["python", "-m", "exporter"]
    assert s["mt5"]["command"] == ["python", "-m", "mt5bridge.server", "--backend", "sim", "--host", "0.0.0.0",
                                   "--port", "18812", "--state", "/data/sim-state.json"]
    assert s["bot"]["environment"]["MT5_MODE"] == "bridge"
    assert s["bot"]["environment"]["MT5_HOST"] == "${MT5_HOST:-mt5}"
    for name in ("bot", "exporter", "mt5", "migrate", "alertmanager-config"):
        assert s[name]["image"] == s["bot"]["image"] and s[name]["build"] == s["bot"]["build"], name


def test_the_alertmanager_config_is_rendered_before_alertmanager_starts(compose):
    s = services(compose)
    renderer = s["alertmanager-config"]
    assert renderer["network_mode"] == "none"
    assert "./deploy/render_alertmanager.py:/opt/tradewatch/deploy/render_alertmanager.py:ro" in renderer["volumes"]
    assert "--config.file=/etc/alertmanager/rendered/alertmanager.yml" in s["alertmanager"]["command"]
    assert "alertmanager-config:/etc/alertmanager/rendered:ro" in s["alertmanager"]["volumes"]


def test_the_image_can_run_the_render_script():
    """render_alertmanager.py runs inside the tradewatch image, whose packages come from pyproject.toml."""
    project = tomllib.loads((mh.REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert "pyyaml" in names, "deploy/render_alertmanager.py needs PyYAML among [project] dependencies"


def test_env_example_documents_every_variable_of_the_compose_file():
    variables = set(re.findall(r"\$\{(\w+)", mh.COMPOSE_FILE.read_text(encoding="utf-8")))
    example = (mh.REPO / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*(\w+)=", example, re.M))
    assert variables - documented == set(), "add these to .env.example"


def test_dockerfile_is_slim_non_root_and_installs_the_project():
    text = (mh.REPO / "Dockerfile").read_text(encoding="utf-8")
    assert all(image.startswith("python:3.11.") and "-slim" in image
               for image in re.findall(r"^FROM\s+(\S+)", text, re.M))
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"pip install \.$", text, re.M)
    assert not re.search(r"^(ENV|ARG)\s+.*(PASSWORD|TOKEN|SECRET)", text, re.M | re.I)


def test_dockerignore_lets_in_only_the_package():
    lines = [ln.strip() for ln in (mh.REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:] for ln in lines if ln.startswith("!")}
    assert not any(a.startswith((".env", ".git", ".venv", "data", "tests")) for a in allowed)
    assert {"pyproject.toml", "README.md", "bot/", "db/", "exporter/", "mt5bridge/"} <= allowed


def test_wine_entrypoint_is_valid_bash():
    bash = mh.find_tool("bash", "apt-get install bash")
    result = mh.run([bash, "-n", str(mh.REPO / "deploy" / "wine" / "entrypoint.sh")])
    assert result.returncode == 0, result.stderr


def test_env_example_does_not_point_the_bot_container_at_itself():
    """.env is shared by `make run` and compose: a loopback MT5_HOST there would make the bot
    container dial itself instead of the `mt5` service (compose uses ${MT5_HOST:-mt5})."""
    example = (mh.REPO / ".env.example").read_text(encoding="utf-8")
    values = re.findall(r"^MT5_HOST=(.*)$", example, re.M)
    assert all(v.strip() in ("", "mt5") for v in values), f"MT5_HOST={values} in .env.example"


def test_the_debug_override_parses_and_publishes_on_loopback_only(empty_env_file):
    override = mh.REPO / "docker-compose.override.example.yml"
    binary = mh.find_tool("docker-compose", "apt-get install docker-compose (Debian), or make sysdeps")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **dummy_secrets()}
    result = mh.run([binary, "--project-directory", str(mh.REPO), "--env-file", str(empty_env_file),
                     "-f", str(mh.COMPOSE_FILE), "-f", str(override), "config", "-q"], cwd=mh.REPO, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, service in mh.load_yaml(override)["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_build_context_installs_every_command_the_stack_runs(tmp_path):
    """What the Dockerfile does (`pip install .` on the .dockerignore'd context), as a wheel build."""
    context = tmp_path / "context"
    context.mkdir()
    for line in (mh.REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        if not line.startswith("!"):
            continue
        source = mh.REPO / line[1:].rstrip("/")
        target = context / line[1:].rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, target)
    result = mh.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                     str(context)], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("tradewatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("bot/__main__.py", "exporter/__main__.py", "mt5bridge/server.py", "db/__main__.py",
                   "confcheck/values.py"):
        assert module in names, f"{module} is missing from the image"
    assert any(n.startswith("db/migrations/versions/") for n in names)
