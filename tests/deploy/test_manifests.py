"""The deployment files are valid and say what the platform needs: checked offline.

``deploy/validate.sh`` is run as CI runs it (docker-compose config + kubernetes-validate on the
kustomize output), and must also fail on a broken file. The rendered compose file and the
rendered Kubernetes objects are then read to check the properties the deployment promises:
one image, only the gateway and the UIs published, health-gated start order, probes, limits,
a restricted security context, autoscalers, disruption budgets, the gateway as the only entry.

Needs Debian's docker-compose (``apt-get install -y --no-install-recommends docker-compose``)
and, for the rendered Kubernetes checks, kubectl (its built-in kustomize); skipped, with that
reason, without them. The Dockerfile checks need nothing.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from urllib.parse import urlsplit
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VALIDATE = ROOT / "deploy" / "validate.sh"
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "prod"]

# process -> (port or None, command) as every deployment must run it.
PROCESSES: dict[str, tuple[int | None, list[str]]] = {
    "gateway": (8000, ["uvicorn", "gateway.main:app"]),
    "auth": (8001, ["uvicorn", "auth.config.asgi:application"]),
    "auth-relay": (None, ["python", "-m", "auth.relay"]),
    "events": (8002, ["uvicorn", "apps.events.main:app"]),
    "booking": (8003, ["uvicorn", "apps.booking.main:app"]),
    "payments": (8004, ["uvicorn", "apps.payments.main:app"]),
    "notifications": (8005, ["uvicorn", "apps.notifications.main:app"]),
    "analytics": (8006, ["uvicorn", "apps.analytics.main:app"]),
}
SERVICES = ["auth", "events", "booking", "payments", "notifications", "analytics"]
INFRA = ["rabbitmq", "postgres", "jaeger", "mailpit"]
# One-shot set-up steps of docker-compose.yml: the per-service PostgreSQL roles (as the
# superuser) and the broker's definitions rendered with the users' password hashes.
SETUP = ["postgres-setup", "rabbitmq-definitions"]
# Whose credentials each process uses (auth-relay is auth's outbox relay).
OWNER = {**{s: s for s in SERVICES}, "auth-relay": "auth"}
RFC1918_WILDCARDS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


def required_compose_variables() -> list[str]:
    """The variables docker-compose.yml refuses to start without (``${VAR:?message}``)."""
    return sorted(
        set(re.findall(r"\$\{([A-Z0-9_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    )


def dummy_env_file(path: Path) -> Path:
    """An env file giving every required variable a value that says where it comes from."""
    path.write_text(
        "".join(f"{v}=dummy-{v.lower().replace('_', '-')}\n" for v in required_compose_variables())
    )
    return path


needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="Debian's docker-compose is not installed "
    "(apt-get install -y --no-install-recommends docker-compose)",
)
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed"
)


def run_validate(root: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        ["bash", str(VALIDATE), str(root)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
    )


# --- the validation script ------------------------------------------------------------------------


@needs_compose
def test_validate_script_accepts_the_deployment_files() -> None:
    result = run_validate()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   docker-compose.yml" in result.stdout
    for target in ["deploy/k8s/base", *(f"deploy/k8s/overlays/{o}" for o in OVERLAYS)]:
        if shutil.which("kubectl"):
            assert f"ok   {target} " in result.stdout, result.stdout


@needs_compose
def test_validate_script_without_kustomize_validates_each_manifest_file() -> None:
    result = run_validate(EB_KUSTOMIZE="none")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "patches are NOT applied" in result.stdout
    for name in ["gateway.yaml", "events.yaml", "migrate-job.yaml", "ingress.yaml"]:
        assert f"ok   deploy/k8s/base/{name} " in result.stdout, result.stdout


def _copy_deploy_files(dst: Path) -> None:
    for name in ["docker-compose.yml", "Dockerfile"]:
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "deploy", dst / "deploy", ignore=shutil.ignore_patterns("__pycache__"))


@needs_compose
def test_validate_script_fails_on_a_broken_kubernetes_manifest(tmp_path: Path) -> None:
    _copy_deploy_files(tmp_path)
    events = tmp_path / "deploy/k8s/base/events.yaml"
    # A misspelt field: strict validation must reject it.
    events.write_text(events.read_text().replace("containerPort: 8002", "containerProt: 8002"))
    for mode in ["auto", "none"]:
        result = run_validate(tmp_path, EB_KUSTOMIZE=mode, K8S_VERSIONS="1.30.0")
        assert result.returncode == 1, (mode, result.stdout, result.stderr)
        assert "FAIL" in result.stderr and "docker-compose.yml does not" not in result.stderr


@needs_compose
def test_validate_script_fails_on_a_missing_kustomization_reference(tmp_path: Path) -> None:
    _copy_deploy_files(tmp_path)
    (tmp_path / "deploy/k8s/base/booking.yaml").unlink()
    for mode in ["auto", "none"]:
        result = run_validate(tmp_path, EB_KUSTOMIZE=mode, K8S_VERSIONS="1.30.0")
        assert result.returncode == 1, (mode, result.stdout, result.stderr)


@needs_compose
def test_validate_script_fails_on_a_broken_compose_file(tmp_path: Path) -> None:
    _copy_deploy_files(tmp_path)
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(
        compose.read_text().replace(
            "condition: service_healthy", "condition: when_it_feels_like_it", 1
        )
    )
    result = run_validate(tmp_path, K8S_VERSIONS="1.30.0")
    assert result.returncode == 1
    assert "docker-compose.yml does not validate" in result.stderr


# --- docker-compose.yml as docker-compose understands it ------------------------------------------


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("docker-compose") is None:
        pytest.skip("Debian's docker-compose is not installed")
    env_file = dummy_env_file(tmp_path_factory.mktemp("compose") / "secrets.env")
    out = subprocess.run(
        ["docker-compose", "--env-file", str(env_file), "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return yaml.safe_load(out)


def test_compose_runs_every_process_from_the_one_dockerfile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(PROCESSES) | set(INFRA) | set(SETUP)
    images = set()
    for name, (port, command) in PROCESSES.items():
        svc = services[name]
        assert svc["build"]["context"] == str(ROOT)
        assert svc["build"]["dockerfile"] == "Dockerfile"
        images.add(svc["image"])
        assert svc["command"][: len(command)] == command
        if port is not None:
            assert svc["command"][svc["command"].index("--port") + 1] == str(port)
            assert svc["environment"]["PORT"] == str(port)  # the image's HEALTHCHECK reads it
        else:
            # `disable: true`, as docker-compose normalises it
            assert svc["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert len(images) == 1


def test_compose_publishes_only_the_gateway_and_the_uis(compose: dict[str, Any]) -> None:
    def container_port(p: Any) -> int:  # {target: 8000, ...} or "127.0.0.1:8025:8025/tcp"
        return int(p["target"]) if isinstance(p, dict) else int(str(p).split("/")[0].split(":")[-1])

    published = {
        name: sorted(container_port(p) for p in svc["ports"])
        for name, svc in compose["services"].items()
        if svc.get("ports")
    }
    assert published == {
        "gateway": [8000],
        "rabbitmq": [15672],
        "jaeger": [16686],
        "mailpit": [8025],
    }


def test_compose_starts_the_platform_on_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in INFRA:
        assert "test" in services[name]["healthcheck"], name
    for name in PROCESSES:
        deps = services[name]["depends_on"]
        if name == "gateway":
            assert {d: c["condition"] for d, c in deps.items()} == {
                s: "service_healthy" for s in SERVICES
            }
            continue
        assert deps["rabbitmq"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
        if name not in ("auth", "auth-relay"):  # they verify tokens with auth's JWKS
            assert deps["auth"]["condition"] == "service_healthy", name
    assert services["notifications"]["environment"]["SMTP_HOST"] == "mailpit"
    assert services["events"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert services["events"]["environment"]["JWKS_URL"] == "http://auth:8001/auth/jwks.json"
    assert services["events"]["environment"]["BOOKING_URL"] == "http://booking:8003"
    assert set(compose["volumes"]) >= {"rabbitmq-data", "postgres-data"}


def test_compose_postgres_setup_covers_one_database_per_service() -> None:
    script = (ROOT / "deploy/k8s/base/postgres-setup.sh").read_text()
    (services,) = re.findall(r"EB_SERVICES:-([a-z ]+)\}", script)
    assert sorted(services.split()) == sorted(SERVICES)


# --- docker-compose.yml: secrets, exposure, trust, least privilege ---------------------------


@needs_compose
def test_compose_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    """No usable password is committed: each one must come from the environment."""
    required = required_compose_variables()
    assert {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD_ADMIN"} <= set(required)
    for service in SERVICES:
        assert {f"DB_PASSWORD_{service.upper()}", f"RABBITMQ_PASSWORD_{service.upper()}"} <= set(
            required
        ), service
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = subprocess.run(
        ["docker-compose", "--env-file", str(empty), "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr or "POSTGRES_PASSWORD" in result.stderr


def test_compose_creates_no_admin_unless_told(compose: dict[str, Any]) -> None:
    env = compose["services"]["auth"]["environment"]
    assert not env.get("ADMIN_PASSWORD") and not env.get("ADMIN_EMAIL")
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text.lower()


def test_compose_publishes_the_gateway_on_localhost_only(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)


def _gateway_address(compose: dict[str, Any]) -> str:
    (network,) = compose["services"]["gateway"]["networks"].values()
    return network["ipv4_address"]


def test_compose_gateway_has_a_fixed_address_on_the_platform_network(
    compose: dict[str, Any],
) -> None:
    address = ipaddress.ip_address(_gateway_address(compose))
    (network_name,) = compose["services"]["gateway"]["networks"]
    (subnet,) = [c["subnet"] for c in compose["networks"][network_name]["ipam"]["config"]]
    assert address in ipaddress.ip_network(subnet)


def test_compose_trusts_forwarded_headers_from_the_gateway_only(compose: dict[str, Any]) -> None:
    gateway = _gateway_address(compose)
    services = compose["services"]
    # auth counts failed logins per client address: X-Forwarded-For only from the gateway.
    assert services["auth"]["environment"]["TRUSTED_PROXIES"] == gateway
    for name in SERVICES:  # uvicorn takes the client address from the gateway's header only
        assert services[name]["environment"]["FORWARDED_ALLOW_IPS"] == gateway, name
    # The gateway is the edge: nothing in front of it is trusted unless configured.
    assert services["gateway"]["environment"]["FORWARDED_ALLOW_IPS"] in ("127.0.0.1", "")
    for name, svc in services.items():
        command = " ".join(map(str, svc.get("command") or []))
        assert "forwarded-allow-ips" not in command, name


def test_no_wildcard_proxy_trust_in_any_deployment_file() -> None:
    files = [
        ROOT / "docker-compose.yml",
        ROOT / "Dockerfile",
        ROOT / "deploy/local/Procfile",
        ROOT / "deploy/local/run.py",
        *sorted((ROOT / "deploy/k8s").rglob("*.yaml")),
        *sorted((ROOT / "deploy/k8s").rglob("*.env")),
    ]
    for path in files:
        text = path.read_text()
        assert not re.search(r"FORWARDED_ALLOW_IPS\W+\*", text), path
        assert not re.search(r"forwarded[-_]allow[-_]ips\W+\*", text, re.I), path
        assert not re.search(r"(value|VALUE)\W+\"?\*\"?\s*$", text, re.M), path
        for wildcard in RFC1918_WILDCARDS:
            assert wildcard not in text, (path, wildcard)


def test_compose_each_process_uses_its_own_database_role_and_broker_user(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, owner in OWNER.items():
        env = services[name]["environment"]
        db, mq = urlsplit(env["DATABASE_URL"]), urlsplit(env["RABBITMQ_URL"])
        assert db.username == f"eb_{owner}", name
        assert db.password == f"dummy-db-password-{owner}", name  # from the environment only
        assert db.hostname == "postgres" and db.path in ("", "/"), name
        assert mq.username == owner, name
        assert mq.password == f"dummy-rabbitmq-password-{owner}", name
        assert mq.path == "/eventbooking", name
    # The gateway talks to neither: it gets no credentials at all.
    assert "DATABASE_URL" not in services["gateway"]["environment"]
    assert "RABBITMQ_URL" not in services["gateway"]["environment"]


def test_compose_sets_up_roles_and_broker_users_before_anything_starts(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    setup = services["postgres-setup"]
    assert setup["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "postgres-setup.sh" in " ".join(setup["command"]) or "postgres-setup.sh" in str(
        setup.get("entrypoint")
    )
    assert setup["environment"]["PGUSER"] == "postgres"
    for service in SERVICES:
        var = f"DB_PASSWORD_{service.upper()}"
        assert setup["environment"][var] == f"dummy-{var.lower().replace('_', '-')}"
    assert services["rabbitmq"]["depends_on"]["rabbitmq-definitions"]["condition"] == (
        "service_completed_successfully"
    )
    assert "RABBITMQ_DEFAULT_PASS" not in services["rabbitmq"].get("environment", {})
    conf = (ROOT / "deploy/compose/rabbitmq.conf").read_text()
    (path,) = re.findall(r"^load_definitions\s*=\s*(\S+)", conf, re.M)
    mounts = [
        v["target"] if isinstance(v, dict) else v.split(":")[1]
        for v in services["rabbitmq"]["volumes"]
    ]
    assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), (path, mounts)
    for name in PROCESSES:
        deps = services[name]["depends_on"]
        if name == "gateway":
            continue
        assert deps["postgres-setup"]["condition"] == "service_completed_successfully", name


# --- the Kubernetes objects as kustomize renders them ---------------------------------------------


def render(target: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(target)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (for `kubectl kustomize`) is not installed")
    return request.param, render(K8S / "overlays" / request.param)


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_k8s_one_deployment_per_process_with_its_command(overlay: tuple[str, list]) -> None:
    _, objs = overlay
    deployments = by_kind(objs, "Deployment")
    assert set(deployments) == set(PROCESSES)
    for name, (port, command) in PROCESSES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["command"][: len(command)] == command
        if port is not None:
            assert container["ports"] == [{"name": "http", "containerPort": port}]


def test_k8s_probes_resources_and_security_context(overlay: tuple[str, list]) -> None:
    _, objs = overlay
    pods = [(n, d["spec"]["template"]["spec"]) for n, d in by_kind(objs, "Deployment").items()]
    pods += [(n, j["spec"]["template"]["spec"]) for n, j in by_kind(objs, "Job").items()]
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
    deployments = by_kind(objs, "Deployment")
    for name in SERVICES:
        (c,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}, name
        assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}, name
    # The gateway's /ready fails while any service is down: its readiness is /health on purpose.
    (gw,) = deployments["gateway"]["spec"]["template"]["spec"]["containers"]
    assert gw["readinessProbe"]["httpGet"]["path"] == "/health"
    assert gw["livenessProbe"]["httpGet"]["path"] == "/health"


def test_k8s_services_autoscalers_and_disruption_budgets(overlay: tuple[str, list]) -> None:
    _, objs = overlay
    deployments = by_kind(objs, "Deployment")
    services, hpas, pdbs = (
        by_kind(objs, "Service"),
        by_kind(objs, "HorizontalPodAutoscaler"),
        by_kind(objs, "PodDisruptionBudget"),
    )
    http_processes = {n for n, (port, _) in PROCESSES.items() if port is not None}
    assert set(services) == http_processes
    for name in http_processes:
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert matches(services[name]["spec"]["selector"], labels)
        assert services[name]["spec"]["ports"][0]["port"] == PROCESSES[name][0]
        assert services[name]["spec"]["ports"][0]["targetPort"] == "http"
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns replicas"
    assert set(hpas) == http_processes  # the gateway and the services are stateless
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            p for p in pdbs.values() if matches(p["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(covering) == 1, name


def _env(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env as name -> value, or -> (secret, key) for a secretKeyRef."""
    out: dict[str, Any] = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        out[e["name"]] = (ref["name"], ref["key"]) if ref else e.get("value")
    return out


def test_k8s_config_secrets_and_migration_job(overlay: tuple[str, list]) -> None:
    env, objs = overlay
    configmaps, secrets = by_kind(objs, "ConfigMap"), by_kind(objs, "Secret")
    (config_name,) = [n for n in configmaps if n.startswith("eventbooking-config")]
    if env == "prod":
        assert secrets == {}, "prod takes its secrets from the secret manager, never from git"
    else:
        # Only auth's development placeholder; no credentials, no admin account.
        assert set(secrets) == {"eventbooking-auth"}
        assert not {"ADMIN_PASSWORD", "ADMIN_EMAIL"} & set(
            secrets["eventbooking-auth"]["stringData"]
        )
    assert "DATABASE_URL" not in configmaps[config_name]["data"]  # credentials are not config
    pods = [d["spec"]["template"]["spec"] for d in by_kind(objs, "Deployment").values()]
    (job,) = by_kind(objs, "Job").values()
    pods.append(job["spec"]["template"]["spec"])
    for pod in pods:
        for c in pod["containers"] + pod.get("initContainers", []):
            refs = [r.get("configMapRef", r.get("secretRef"))["name"] for r in c["envFrom"]]
            assert refs == [config_name]  # shared settings only: credentials are per process
    # One migration container per service that owns a database, each as that service's role;
    # the superuser only in the init container that creates the roles.
    spec = job["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == set(SERVICES)
    for name, c in containers.items():
        e = _env(c)
        assert e["DATABASE_PASSWORD"] == (f"eventbooking-{name}-credentials", "DATABASE_PASSWORD")
        assert e["DATABASE_URL"].startswith(f"postgresql://eb_{name}:$(DATABASE_PASSWORD)@")
        assert "PGPASSWORD" not in e
    (setup,) = spec["initContainers"]
    e = _env(setup)
    assert e["PGPASSWORD"] == ("eventbooking-postgres-admin", "PGPASSWORD")
    for name in SERVICES:
        assert e[f"DB_PASSWORD_{name.upper()}"] == (
            f"eventbooking-{name}-credentials",
            "DATABASE_PASSWORD",
        )
    assert "postgres-setup.sh" in " ".join(setup["command"])
    assert spec["restartPolicy"] == "OnFailure"


def test_k8s_each_process_uses_its_own_credentials(overlay: tuple[str, list]) -> None:
    _, objs = overlay
    deployments = by_kind(objs, "Deployment")
    for name, owner in OWNER.items():
        (c,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        e = _env(c)
        secret = f"eventbooking-{owner}-credentials"
        assert e["DATABASE_PASSWORD"] == (secret, "DATABASE_PASSWORD"), name
        assert e["RABBITMQ_PASSWORD"] == (secret, "RABBITMQ_PASSWORD"), name
        assert e["DATABASE_URL"] == (
            f"postgresql://eb_{owner}:$(DATABASE_PASSWORD)@$(DATABASE_HOST):$(DATABASE_PORT)/"
        ), name
        assert e["RABBITMQ_URL"] == (
            f"amqp://{owner}:$(RABBITMQ_PASSWORD)@$(RABBITMQ_HOST):$(RABBITMQ_PORT)/$(RABBITMQ_VHOST)"
        ), name
        # Kubernetes expands $(VAR) only from variables defined before it.
        names = [x["name"] for x in c["env"]]
        assert names.index("DATABASE_PASSWORD") < names.index("DATABASE_URL"), name
        assert names.index("RABBITMQ_PASSWORD") < names.index("RABBITMQ_URL"), name
    (gw,) = deployments["gateway"]["spec"]["template"]["spec"]["containers"]
    assert not {"DATABASE_URL", "RABBITMQ_URL", "DATABASE_PASSWORD"} & set(_env(gw))


def test_k8s_forwarded_headers_are_believed_from_dedicated_ip_pools_only(
    overlay: tuple[str, list],
) -> None:
    _, objs = overlay
    (config,) = [
        c for n, c in by_kind(objs, "ConfigMap").items() if n.startswith("eventbooking-config")
    ]
    pools = {
        k: ipaddress.ip_network(config["data"][k]) for k in ("GATEWAY_POD_CIDR", "INGRESS_POD_CIDR")
    }
    for name, pool in pools.items():
        # A pool of a few addresses for those pods only, never a private-network wildcard.
        assert pool.prefixlen >= 24, name
    assert not pools["GATEWAY_POD_CIDR"].overlaps(pools["INGRESS_POD_CIDR"])
    deployments = by_kind(objs, "Deployment")
    (auth,) = deployments["auth"]["spec"]["template"]["spec"]["containers"]
    assert _env(auth)["TRUSTED_PROXIES"] == "$(GATEWAY_POD_CIDR)"
    for name in SERVICES:
        (c,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert _env(c)["FORWARDED_ALLOW_IPS"] == "$(GATEWAY_POD_CIDR)", name
    gateway = deployments["gateway"]["spec"]["template"]
    (gw,) = gateway["spec"]["containers"]
    assert _env(gw)["FORWARDED_ALLOW_IPS"] == "$(INGRESS_POD_CIDR)"
    assert (
        "eventbooking-gateway"
        in gateway["metadata"]["annotations"]["cni.projectcalico.org/ipv4pools"]
    )


def test_k8s_ships_the_same_role_sql_and_broker_definitions_as_compose(
    overlay: tuple[str, list],
) -> None:
    _, objs = overlay
    configmaps = by_kind(objs, "ConfigMap")
    (setup,) = [c for n, c in configmaps.items() if n.startswith("eventbooking-postgres-setup")]
    (defs,) = [
        c for n, c in configmaps.items() if n.startswith("eventbooking-rabbitmq-definitions")
    ]
    # What docker-compose.yml mounts into its one-shot set-up services, by file name.
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounted = {
        Path(volume.split(":")[0]).name: ROOT / volume.split(":")[0]
        for name in ["postgres-setup", "rabbitmq-definitions"]
        for volume in services[name]["volumes"]
    }
    for name in ["postgres-setup.sh", "postgres-roles.sql"]:
        assert setup["data"][name] == mounted[name].read_text(), name
    assert (
        defs["data"]["rabbitmq-definitions.json"]
        == mounted["rabbitmq-definitions.json"].read_text()
    )


def test_k8s_the_gateway_is_the_only_entry_point(overlay: tuple[str, list]) -> None:
    _, objs = overlay
    (ingress,) = by_kind(objs, "Ingress").values()
    backends = {
        (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert backends == {("gateway", "http")}
    for svc in by_kind(objs, "Service").values():
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_k8s_overlays_put_everything_in_their_namespace(overlay: tuple[str, list]) -> None:
    env, objs = overlay
    (namespace,) = by_kind(objs, "Namespace")
    assert namespace == {"dev": "eventbooking-dev", "prod": "eventbooking"}[env]
    for o in objs:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == namespace, o["metadata"]["name"]


@needs_kubectl
def test_compose_and_kubernetes_run_the_same_commands(compose: dict[str, Any]) -> None:
    """The two deployments must not drift apart: same processes, same commands."""
    deployments = by_kind(render(K8S / "base"), "Deployment")
    for name in PROCESSES:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == compose["services"][name]["command"], name
    (events,) = deployments["events"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "BOOKING_URL", "value": "http://booking:8003"} in events["env"]


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), grouped by stage."""
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            lines.append(current.strip())
            current = ""
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_non_root_with_a_health_check() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 3
    final = stages[-1]
    assert final[0].split()[1] == "${PYTHON_IMAGE}"
    args = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in args
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [line for line in final if line.upper().startswith("HEALTHCHECK ")]
    assert len(health) == 1 and "/health" in health[0] and "curl" not in health[0]
    # Dependencies come from the builder stage; the runtime stage compiles nothing.
    assert any("--from=builder" in line for line in final)
    assert not any("pip install" in line or "apt-get" in line for line in final)


def test_dockerfile_copies_only_what_exists_and_is_in_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for stage in dockerfile_stages():
        for line in stage:
            if not line.upper().startswith("COPY ") or "--from=" in line:
                continue
            sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
            for src in sources:
                assert (ROOT / src).exists(), src
                assert src.split("/")[0] not in ignored, f"{src} is excluded by .dockerignore"
    # Every package pyproject.toml installs is in the image.
    copied = " ".join(line for s in dockerfile_stages() for line in s if line.startswith("COPY"))
    for package in ["apps", "kit", "auth", "contracts", "gateway", "observability"]:
        assert f" {package} ./{package}" in copied, package
