"""The Kubernetes manifests (deploy/kubernetes): every overlay renders, every object is valid for
the oldest and newest Kubernetes that Antrea supports, and the pieces fit together: Services reach
pods, probes reach ports, the collector's configuration is flags the real CLI accepts, the Jobs run
real commands, the image is the one the Dockerfile builds, every pod meets the restricted Pod
Security Standard.

Rendering needs kustomize: `kubectl kustomize`, or `kustomize build` (.ci/run provides one).
Without either the tests skip locally and fail under CI (IPFIX_ANTREA_REQUIRE_KUSTOMIZE=1).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ipfix_antrea import cli

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "kubernetes"
OVERLAYS = ["base", "overlays/example", "overlays/external-elasticsearch"]
# The oldest and newest Kubernetes minor versions that Antrea supports, within the range
# kubernetes-validate has schemas for (docs/kubernetes.md, "Requirements").
KUBERNETES_VERSIONS = ["1.25", "1.37"]
WORKLOADS = ("Deployment", "StatefulSet", "Job")
COLLECTOR_IMAGE = "ipfix-collect"  # the repository part of the image's reference
REQUIRE_ENV = "IPFIX_ANTREA_REQUIRE_KUSTOMIZE"


# ------------------------------------------------------------------------------------ rendering

def _kustomize_command() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    msg = "neither kubectl nor kustomize is on PATH"
    if os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{msg}, and {REQUIRE_ENV} is set", pytrace=False)
    pytest.skip(msg)


@functools.cache
def _render(overlay: str) -> tuple[str, ...]:
    proc = subprocess.run([*_kustomize_command(), str(DEPLOY / overlay)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"kustomize failed on {overlay}:\n{proc.stderr}"
    return tuple(json.dumps(doc) for doc in yaml.safe_load_all(proc.stdout) if doc)


def render(overlay: str) -> list[dict]:
    """The overlay's objects, as `kubectl apply -k` would send them (fresh copies)."""
    return [json.loads(doc) for doc in _render(overlay)]


@pytest.fixture(params=OVERLAYS)
def objects(request) -> list[dict]:
    return render(request.param)


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_specs(objs: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(workload, pod template) for every Deployment, StatefulSet and Job."""
    for o in objs:
        if o["kind"] in WORKLOADS:
            yield o, o["spec"]["template"]


def containers(pod: dict) -> list[dict]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def collector(objs: list[dict]) -> tuple[dict, dict]:
    """The ipfix-collect Deployment's pod template and its container."""
    pod = one(objs, "Deployment", "ipfix-collect")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    return pod, container


def container_env(objs: list[dict], container: dict) -> dict[str, str | None]:
    """The container's environment: ConfigMaps from envFrom (their values), then env (values, or
    None for those from a Secret)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        env.update(one(objs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env


def image_ref() -> str:
    proc = subprocess.run(["bash", "-c", "source .ci/image.sh && image_ref"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# ------------------------------------------------------------------------------- validity

@pytest.mark.parametrize("k8s", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes_strictly(objects, k8s):
    errors = []
    for o in objects:
        try:
            kubernetes_validate.validate(o, k8s, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{o['kind']}/{o['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_an_unknown_field():
    deployment = one(render("base"), "Deployment", "ipfix-collect")
    deployment["spec"]["template"]["spec"]["containers"][0]["lifecycleHooks"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="lifecycleHooks"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_everything_is_in_the_antreaflow_namespace(objects):
    (namespace,) = by_kind(objects, "Namespace")
    assert namespace["metadata"]["name"] == "antreaflow"
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"antreaflow"}


# ----------------------------------------------------------------------- services and ports

def test_every_service_selects_pods_that_have_its_target_ports(objects):
    pods = [pod for _, pod in pod_specs(objects)]
    for service in by_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        selected = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            protocol = port.get("protocol", "TCP")
            for pod in selected:
                offered = {(p.get("name"), p["containerPort"], p.get("protocol", "TCP"))
                           for c in pod["spec"]["containers"] for p in c.get("ports", [])}
                target = port["targetPort"]
                assert any((name == target if isinstance(target, str) else number == target)
                           and proto == protocol for name, number, proto in offered), \
                    f"Service {service['metadata']['name']} port {port['name']}: no {protocol} port {target}"


def test_the_collector_service_takes_ipfix_on_4739_over_tcp_and_udp(objects):
    service = one(objects, "Service", "ipfix-collect")
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} >= {(4739, "TCP"), (4739, "UDP")}


def test_every_named_port_in_a_probe_or_service_exists(objects):
    for workload, pod in pod_specs(objects):
        for c in containers(pod):
            names = {p["name"] for p in c.get("ports", [])}
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(kind, {})
                for handler in ("httpGet", "tcpSocket"):
                    port = probe.get(handler, {}).get("port")
                    if isinstance(port, str):
                        assert port in names, f"{workload['metadata']['name']}/{c['name']} {kind}: no port {port}"


def test_the_collector_probes_are_its_metrics_endpoints(objects):
    _, container = collector(objects)
    env = container_env(objects, container)
    metrics_port = int(env["IPFIX_COLLECT_METRICS_LISTEN"].rsplit(":", 1)[1])
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port[container["readinessProbe"]["httpGet"]["port"]] == metrics_port
    assert port[container["livenessProbe"]["httpGet"]["port"]] == metrics_port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert port["ipfix-tcp"] == port["ipfix-udp"] == 4739


def test_kibana_is_on_nodeport_30007_within_the_nodeport_range():
    objs = render("base")
    for service in by_kind(objs, "Service"):
        for port in service["spec"]["ports"]:
            if "nodePort" in port:
                assert 30000 <= port["nodePort"] <= 32767
    (port,) = one(objs, "Service", "kibana")["spec"]["ports"]
    assert one(objs, "Service", "kibana")["spec"]["type"] == "NodePort" and port["nodePort"] == 30007


# ------------------------------------------------------------------- the collector's settings

def test_the_collector_environment_is_flags_the_real_cli_accepts(objects):
    _, container = collector(objects)
    env = container_env(objects, container)
    parser = cli.build_parser()
    flags = {cli.env_name(o) for a in parser._actions for o in a.option_strings if o.startswith("--")}
    unknown = sorted(name for name in env if name.startswith(cli.ENV_PREFIX) and name not in flags)
    assert not unknown, f"not flags of ipfix-collect: {unknown}"
    values = {name: "secret-value" if value is None else value for name, value in env.items()}
    args = cli.parse_args(parser, [], values)  # each value passes its flag's own checks
    assert args.inputs == ["tcp://0.0.0.0:4739", "udp://0.0.0.0:4739"]


def test_the_collector_writes_only_to_its_volumes(objects):
    pod, container = collector(objects)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = container_env(objects, container)
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for name in ("IPFIX_COLLECT_STATE_DIR", "IPFIX_COLLECT_ES_DEAD_LETTER"):
        path = env[name]
        assert any(path == m or path.startswith(m + "/") for m in mounts), f"{name}={path} is not on a volume"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert all("emptyDir" in volumes[m["name"]] for m in container["volumeMounts"])


def test_the_grace_period_outlasts_the_elasticsearch_retry_budget(objects):
    pod, container = collector(objects)
    retry_for = float(container_env(objects, container)["IPFIX_COLLECT_ES_RETRY_FOR"])
    # retrying a request stops after retry_for; then a full queue must still reach Elasticsearch
    assert retry_for > 0 and pod["spec"]["terminationGracePeriodSeconds"] >= retry_for + 60


def test_the_setup_job_runs_a_real_ipfix_collect_setup():
    objs = render("base")
    (container,) = one(objs, "Job", "ipfix-collect-setup")["spec"]["template"]["spec"]["containers"]
    assert "command" not in container  # the image's entrypoint: ipfix-collect
    args = container["args"]
    assert args[0] == "setup"
    environ = {e["name"]: e.get("value", "secret-value") for e in container["env"]}
    cli.parse_args(cli.build_setup_parser(), args[1:], environ)  # a refused argument exits: the test fails
    assert args[args.index("--elasticsearch") + 1] == "http://elasticsearch:9200"
    assert args[args.index("--kibana") + 1] == "http://kibana:5601"


# ------------------------------------------------------------------------------- images

def test_the_collector_image_is_the_one_the_dockerfile_builds(objects):
    ref = image_ref()
    assert ref.endswith(f"/{COLLECTOR_IMAGE}:{version()}")
    used = {c["image"] for _, pod in pod_specs(objects) for c in containers(pod)
            if COLLECTOR_IMAGE in c["image"].rsplit("/", 1)[-1]}
    assert used == {ref}
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(rf"^ARG VERSION={re.escape(version())}$", dockerfile, re.M)


def test_elasticsearch_and_kibana_are_the_same_version():
    objs = render("base")
    es = {c["image"] for c in containers(one(objs, "StatefulSet", "elasticsearch")["spec"]["template"])}
    kibana = {c["image"] for c in containers(one(objs, "Deployment", "kibana")["spec"]["template"])}
    (es_image,), (kibana_image,) = es, kibana
    assert es_image.startswith("docker.elastic.co/elasticsearch/elasticsearch:")
    assert kibana_image.startswith("docker.elastic.co/kibana/kibana:")
    es_version = es_image.rsplit(":", 1)[1]
    assert es_version == kibana_image.rsplit(":", 1)[1] and es_version.split(".")[0] in ("8", "9")


# ------------------------------------------------------------------------------ security

def test_every_pod_meets_the_restricted_pod_security_standard(objects):
    for workload, pod in pod_specs(objects):
        spec, name = pod["spec"], workload["metadata"]["name"]
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"].get("runAsUser", 1) != 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        allowed = {"configMap", "emptyDir", "secret", "persistentVolumeClaim", "projected", "downwardAPI"}
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= allowed, f"{name}: volume {volume['name']}"
        for c in containers(pod):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), f"{name}/{c['name']}"
            assert not sc.get("privileged"), f"{name}/{c['name']}"
            assert not c.get("ports") or all("hostPort" not in p for p in c["ports"])
    (namespace,) = by_kind(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_container_has_resource_requests_and_a_memory_limit(objects):
    for workload, pod in pod_specs(objects):
        for c in containers(pod):
            resources = c["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{workload['metadata']['name']}/{c['name']}"
            assert "memory" in resources["limits"], f"{workload['metadata']['name']}/{c['name']}"


def test_only_the_credentials_job_gets_a_service_account_token(objects):
    for workload, pod in pod_specs(objects):
        if workload["metadata"]["name"] != "elasticsearch-credentials":
            assert pod["spec"]["automountServiceAccountToken"] is False, workload["metadata"]["name"]


# --------------------------------------------------------------------- references between objects

def test_every_configmap_a_pod_uses_is_rendered(objects):
    names = {o["metadata"]["name"] for o in by_kind(objects, "ConfigMap")}
    for workload, pod in pod_specs(objects):
        used = [v["configMap"]["name"] for v in pod["spec"].get("volumes", []) if "configMap" in v]
        used += [s["configMapRef"]["name"] for c in containers(pod) for s in c.get("envFrom", [])
                 if "configMapRef" in s]
        assert set(used) <= names, workload["metadata"]["name"]


def _credentials_script():
    path = DEPLOY / "base/credentials/generate_credentials.py"
    spec = importlib.util.spec_from_file_location("generate_credentials", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_key_used_from_the_generated_secret_is_one_the_job_generates(objects):
    secret = one(render("base"), "Job", "elasticsearch-credentials")
    (job,) = secret["spec"]["template"]["spec"]["containers"]
    name = {e["name"]: e["value"] for e in job["env"]}["SECRET_NAME"]
    keys = set(_credentials_script().KEYS)
    for workload, pod in pod_specs(objects):
        for c in containers(pod):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] == name:
                    assert ref["key"] in keys, f"{workload['metadata']['name']}/{c['name']}: {ref['key']}"


def test_the_credentials_job_may_create_and_complete_only_its_secret():
    objs = render("base")
    job = one(objs, "Job", "elasticsearch-credentials")["spec"]["template"]["spec"]
    (container,) = job["containers"]
    secret = {e["name"]: e["value"] for e in container["env"]}["SECRET_NAME"]
    binding = one(objs, "RoleBinding", "elasticsearch-credentials")
    assert {"kind": "ServiceAccount", "name": job["serviceAccountName"], "namespace": "antreaflow"} \
        in binding["subjects"]
    one(objs, "ServiceAccount", job["serviceAccountName"])
    rules = one(objs, "Role", binding["roleRef"]["name"])["rules"]
    assert {"create"} == {v for r in rules if "resourceNames" not in r for v in r["verbs"]}
    assert all(r["resourceNames"] == [secret] for r in rules if "resourceNames" in r)


# ------------------------------------------------------------------- Elasticsearch and Kibana

def test_elasticsearch_keeps_its_data_on_the_claim_at_its_data_path():
    sts = one(render("base"), "StatefulSet", "elasticsearch")
    (es,) = sts["spec"]["template"]["spec"]["containers"]
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    data = [m for m in es["volumeMounts"] if m["name"] in claims]
    assert [m["mountPath"] for m in data] == ["/usr/share/elasticsearch/data"]


def test_elasticsearch_heap_is_half_its_memory_and_needs_no_max_map_count():
    for overlay in ("base", "overlays/example"):
        sts = one(render(overlay), "StatefulSet", "elasticsearch")
        (es,) = sts["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in es["env"]}
        heap = re.fullmatch(r"-Xms(\d+)g -Xmx(\d+)g", env["ES_JAVA_OPTS"])
        assert heap and heap[1] == heap[2]
        limit = es["resources"]["limits"]["memory"]
        assert limit.endswith("Gi") and int(heap[1]) * 2 == int(limit[:-2])
        assert env["node.store.allow_mmap"] == "false"
        assert env["xpack.security.enabled"] == "true" and env["discovery.type"] == "single-node"


def _kibana_yml() -> dict:
    objs = render("base")
    return yaml.safe_load(one_prefixed(objs, "ConfigMap", "kibana-config")["data"]["kibana.yml"])


def one_prefixed(objs: list[dict], kind: str, prefix: str) -> dict:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].startswith(prefix + "-")]
    return found


def test_kibana_opens_on_the_overview_dashboard_that_setup_imports():
    route = _kibana_yml()["uiSettings.overrides.defaultRoute"]
    ndjson = REPO / "ipfix_antrea/dashboards/kibana.ndjson"
    dashboards = {o["attributes"]["title"]: o["id"] for o in map(json.loads, ndjson.read_text().splitlines())
                  if o.get("type") == "dashboard"}
    (overview,) = [i for title, i in dashboards.items() if title.endswith("Overview")]
    assert route == f"/app/dashboards#/view/{overview}"


def test_kibana_connects_as_its_own_user_with_the_password_from_its_environment():
    config = _kibana_yml()
    objs = render("base")
    (kibana,) = one(objs, "Deployment", "kibana")["spec"]["template"]["spec"]["containers"]
    variable = re.fullmatch(r"\$\{(\w+)\}", config["elasticsearch.password"])[1]
    (env,) = [e for e in kibana["env"] if e["name"] == variable]
    assert env["valueFrom"]["secretKeyRef"]["key"] == config["elasticsearch.username"]
    assert config["elasticsearch.hosts"] == ["http://elasticsearch:9200"]


# --------------------------------------------------------------------- bring your own Elasticsearch

def test_the_external_overlay_is_only_the_collector_with_an_api_key():
    objs = render("overlays/external-elasticsearch")
    assert {o["kind"] for o in objs} == {"Namespace", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    deployment = one(objs, "Deployment", "ipfix-collect")
    assert deployment["spec"]["replicas"] > 1
    _, container = collector(objs)
    env = container_env(objs, container)
    assert "IPFIX_COLLECT_ES_API_KEY" in env and "IPFIX_COLLECT_ES_USER" not in env
    assert "IPFIX_COLLECT_ES_PASSWORD" not in env
    assert env["IPFIX_COLLECT_SINK"].startswith("elasticsearch:https://")
    pdb = one(objs, "PodDisruptionBudget", "ipfix-collect")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
