"""The deployment files, checked as far as this machine can without a container engine (docs/deploy.md): the
compose file against the compose specification's JSON schema and against the files it names, the systemd units
with `systemd-analyze verify`, the image's install steps run as the script they are."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from kernel.plant import load_plant

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    npm = shutil.which("npm")
    schema = HERE / "node_modules" / "dclint" / "schemas" / "compose.schema.json"
    if not schema.is_file():
        if npm is None:
            pytest.skip("npm installs the compose specification's schema (tests/deploy/package-lock.json)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, capture_output=True, timeout=300)
    return json.loads(schema.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def test_the_compose_file_follows_the_compose_specification(compose_schema, compose):
    jsonschema.validate(compose, compose_schema, cls=jsonschema.Draft7Validator)


def test_every_file_the_compose_file_mounts_or_builds_from_is_in_the_repository(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists() or source == "./plant.yaml", f"{name} mounts {source}"
        build = service.get("build")
        if build:
            assert (COMPOSE / build["context"] / build["dockerfile"]).is_file(), name
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/"), "secrets stay in the ignored ./secrets"
    assert "secrets/" in (COMPOSE / ".gitignore").read_text().split()


def test_the_example_plant_gives_each_process_the_mqtt_password_it_names(compose):
    """Each identity of the example plant reads its password from a secret the service of that process mounts."""
    plant = load_plant(COMPOSE / "plant.example.yaml")
    mounted = {name: {f"/run/secrets/{secret}" for secret in service.get("secrets", [])}
               for name, service in compose["services"].items()}
    assert str(plant.mqtt.core.password_file) in mounted["core"]
    for identity in plant.edge_identities():
        assert str(identity.password_file) in mounted["edge"] and str(identity.password_file) in mounted["broker-config"]
    assert "--edge-id" in compose["services"]["edge"]["command"]
    assert "MES_SECRETS_DIR=/run/secrets" in (DEPLOY / "Dockerfile").read_text(), "the database URL is read from its secret"


def test_the_image_copies_every_package_and_installs_with_the_script():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r'include = \[([^\]]*)\]', pyproject).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert f"COPY {package} /src/{package}" in dockerfile, f"the image lacks the package {package}"
    assert "deploy/install.sh /opt/mes" in dockerfile
    for source in re.findall(r"^COPY (.+) /src/", dockerfile, flags=re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path


def test_the_systemd_units_verify(tmp_path):
    """`systemd-analyze verify` checks each unit's syntax and settings; it also wants the command to exist, so the
    copies checked here name this checkout's `mes` where the units say /opt/mes/bin/mes."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    mes = Path(sys.executable).with_name("mes")
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/mes/bin/mes", str(mes)))
        result = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60)
        problems = [line for line in result.stderr.splitlines() if str(copy) in line or unit.name in line]
        assert result.returncode == 0 and not problems, result.stderr


@pytest.mark.slow
def test_the_install_script_installs_a_working_mes(tmp_path):
    """What the image runs (deploy/Dockerfile) run here: a virtual environment of its own with `mes` in it."""
    prefix = tmp_path / "opt-mes"
    result = subprocess.run(["sh", str(DEPLOY / "install.sh"), str(prefix)], capture_output=True, text=True, timeout=900,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": os.environ.get("HOME", str(tmp_path))})
    assert result.returncode == 0, result.stdout + result.stderr
    schema = subprocess.run([str(prefix / "bin" / "mes"), "db", "sql"], capture_output=True, text=True, timeout=120)
    assert schema.returncode == 0 and "CREATE TABLE production_intervals" in schema.stdout, schema.stderr
