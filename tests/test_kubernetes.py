"""The Kubernetes manifests (deploy/kubernetes), checked without a cluster (none runs here).

The example overlay is rendered by kustomize (``kubectl kustomize``) as
``kubectl apply -k`` would render it; every object is validated against the
Kubernetes API schemas (kubernetes-validate) and linted by a policy checker
(checkov); the alert rules are checked and unit-tested by promtool. Then the
pod is run here as rendered: the image's command, with the rendered settings,
on the rendered port, its probes on the rendered paths, the system token read
from where the Secret is mounted; and it drains on SIGTERM within the timing
the Deployment allows. The tools: kubernetes-validate from the `test` extra; kubectl, promtool and
checkov (in a venv of its own) from scripts/kubernetes-tools, which scripts/test runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import yaml
from support import ROOT, TESTKIT, RedisServer, free_port, post, wait_until

from gateway import errors

KUBERNETES = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".venv" / "tools"  # scripts/kubernetes-tools puts what PATH lacks here
OVERLAY = "overlays/example"
# The Prometheus operator's kinds: no schema in kubernetes-validate; checked below by what they mean.
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}
# checkov checks left off, each for a reason a user's deployment shares.
CHECKOV_SKIPS = {
    # The image is the user's own (overlay `images:`); a digest there pins it, a tag here cannot.
    "CKV_K8S_43": "image by digest",
    # WRAPGATE_METRICS_TOKEN has no file variant yet; Prometheus reads the same Secret.
    "CKV_K8S_35": "secret as environment variable",
}


def tool(name: str, *candidates: Path) -> str:
    for path in candidates:
        if path.exists():
            return str(path)
    found = shutil.which(name)
    assert found, f"{name} is missing: scripts/kubernetes-tools installs it"
    return found


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=180, **kwargs)


# -- rendering ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """deploy/kubernetes with the overlay's secret files written, as a user writes them."""
    folder = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, folder, ignore=shutil.ignore_patterns("*.secret"))
    (folder / OVERLAY / "wrapgate_token.secret").write_text("k8s-System-Token-1\n")
    (folder / OVERLAY / "metrics_token.secret").write_text("k8s-Metrics-Token-1\n")
    return folder


def render(folder: Path) -> list[dict]:
    out = run([tool("kubectl", TOOLS / "kubectl"), "kustomize", str(folder)])
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def objects(tree):
    return render(tree / OVERLAY)


def one(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def gateway_container(objects) -> dict:
    (container,) = one(objects, "Deployment", "wrapgate")["spec"]["template"]["spec"]["containers"]
    return container


def pod_env(objects) -> dict[str, str]:
    """The gateway container's environment from the ConfigMap; secret-sourced variables as Secret values."""
    container = gateway_container(objects)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret_value(objects, ref["name"], ref["key"])
    return env


def secret_value(objects, name: str, key: str) -> str:
    import base64

    return base64.b64decode(one(objects, "Secret", name)["data"][key]).decode().strip()


def dockerfile_env() -> dict[str, str]:
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    final = text.split("\nFROM ")[-1]
    env = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)))
    return {k: v.strip('"') for k, v in env.items()}


def found(pattern: str, text: str) -> re.Match:
    match = re.search(pattern, text, re.M)
    assert match, f"{pattern!r} not found"
    return match


def dockerfile_command() -> list[str]:
    return json.loads(found(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text()).group(1))


def image_settings(env: dict[str, str]) -> dict:
    """gunicorn's and the gateway's settings as the image derives them from this environment."""
    code = (
        "import json; from gateway import config, gunicorn_conf as g;"
        "s = config.load(require_token=False);"
        "print(json.dumps({'bind': g.bind, 'graceful_timeout': g.graceful_timeout, 'timeout': g.timeout,"
        " 'workers': g.workers, 'call_timeout': s.call_timeout, 'limiter': s.limiter,"
        " 'max_body_bytes': s.max_body_bytes}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WRAPGATE_")}
    env = {k: v for k, v in env.items() if k != "WRAPGATE_SYSTEM_TOKEN_FILE"}  # the pod's path, not here
    out = run([sys.executable, "-c", code], env={**clean, **dockerfile_env(), **env}, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# -- the objects ----------------------------------------------------------------------


def test_the_overlay_deploys_replicas_redis_and_the_users_image(objects):
    kinds = sorted(o["kind"] for o in objects)
    for kind in (
        "Namespace",
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Ingress",
        "PodMonitor",
        "PrometheusRule",
    ):
        assert kind in kinds
    namespace = one(objects, "Namespace")["metadata"]["name"]
    assert all(o["metadata"].get("namespace") == namespace for o in objects if o["kind"] != "Namespace")
    # Several replicas, counted by the autoscaler alone: a count in the Deployment would
    # be re-applied by every `kubectl apply -k` and fight it.
    assert "replicas" not in one(objects, "Deployment", "wrapgate")["spec"]
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert gateway_container(objects)["image"] == "registry.example.com/acme/wrapgate-acme:1.0.0"
    env = pod_env(objects)
    assert env["WRAPGATE_LIMITER"] == "redis"
    # The Redis URL names the Redis Service and its port.
    host, port = found(r"^redis://([\w-]+):(\d+)/\d+$", env["WRAPGATE_REDIS_URL"]).groups()
    redis = one(objects, "Service", host)
    assert int(port) in [p["port"] for p in redis["spec"]["ports"]]
    statefulset = one(objects, "StatefulSet", "wrapgate-redis")
    assert labels_select(redis["spec"]["selector"], pod_labels(statefulset))
    # Slots are leases: nothing saved, and none evicted (an evicted slot lets too many calls through).
    args = " ".join(statefulset["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--maxmemory-policy noeviction" in args and "--appendonly no" in args


@pytest.mark.parametrize("version", ["1.29.0", "latest"])
def test_every_object_matches_the_kubernetes_schemas(objects, version):
    import kubernetes_validate

    if version == "latest":
        version = kubernetes_validate.latest_version()
    checked = set()
    for obj in objects:
        if obj["kind"] in OPERATOR_KINDS:
            continue
        # strict: an unknown or misspelt field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(obj, version, strict=True)
        checked.add(obj["kind"])
    assert {"Deployment", "StatefulSet", "NetworkPolicy", "HorizontalPodAutoscaler"} <= checked


def test_the_schemas_catch_a_misspelt_field(objects):
    import kubernetes_validate

    broken = json.loads(json.dumps(one(objects, "Deployment", "wrapgate")))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_policy_checker_finds_nothing(objects, tmp_path):
    """checkov on the rendered overlay: every check passes but the reasoned skips.
    A copy made worse (root filesystem writable, no limits) must fail, or the checker checks nothing."""
    good = tmp_path / "rendered.yaml"
    good.write_text(yaml.safe_dump_all(objects))
    worse = [json.loads(json.dumps(o)) for o in objects if o["kind"] == "Deployment"]
    container = worse[0]["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    del container["resources"]["limits"]
    bad = tmp_path / "worse.yaml"
    bad.write_text(yaml.safe_dump_all(worse))
    checkov = tool("checkov", ROOT / ".venv" / "checkov" / "bin" / "checkov")
    options = ["--framework", "kubernetes", "--quiet", "--compact", "--skip-download", "--output", "json"]
    out = run(
        [checkov, *options, "--skip-check", ",".join(CHECKOV_SKIPS), "-f", str(good), "-f", str(bad)],
        # offline: no look-up of guidelines on the vendor's platform
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert out.stdout, out.stderr
    report = json.loads(out.stdout)
    failed = [
        (c["check_id"], c["resource"], Path(c["file_path"]).name) for c in report["results"]["failed_checks"]
    ]
    assert report["summary"]["passed"] > 50
    assert {name for _, _, name in failed} == {"worse.yaml"}, failed
    # read-only root filesystem, memory limit
    assert {"CKV_K8S_22", "CKV_K8S_13"} <= {check for check, _, _ in failed}


# -- the pod against the image ------------------------------------------------------------


def test_the_drain_outlasts_every_call(objects):
    """grace period > drain delay + graceful timeout; graceful timeout > drain delay + call timeout.

    gunicorn's master counts graceful_timeout from SIGTERM, drain delay included; a call
    accepted at the last moment of the drain needs a whole call timeout after it.
    """
    env = pod_env(objects)
    settings = image_settings(env)
    spec = one(objects, "Deployment", "wrapgate")["spec"]["template"]["spec"]
    grace = spec["terminationGracePeriodSeconds"]
    drain = float(env.get("WRAPGATE_DRAIN_DELAY", 0))
    assert drain >= gateway_container(objects)["readinessProbe"]["periodSeconds"]  # a probe sees the 503
    assert grace > drain + settings["graceful_timeout"]
    assert settings["graceful_timeout"] > drain + settings["call_timeout"]
    assert settings["timeout"] > settings["call_timeout"]  # gunicorn never kills a worker mid-call
    assert settings["call_timeout"] >= 300  # PROTOCOL.md: 5-minute calls
    assert settings["limiter"] == "redis"
    # No preStop hook: the drain delay is the gateway's own (its time would count against the grace).
    assert "lifecycle" not in gateway_container(objects)
    # The autoscaler removes pods slower than they drain.
    scale_down = one(objects, "HorizontalPodAutoscaler")["spec"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= grace


def test_ports_paths_user_and_secrets_agree_with_the_image(objects):
    container = gateway_container(objects)
    env = pod_env(objects)
    spec = one(objects, "Deployment", "wrapgate")["spec"]["template"]["spec"]
    # The port gunicorn binds, under the port's name every other object uses.
    port = int(image_settings(env)["bind"][0].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", port)
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "command" not in container and "args" not in container  # the image's own command
    service = one(objects, "Service", "wrapgate")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    policy = one(objects, "NetworkPolicy", "wrapgate")
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == {"http"}
    # The image's user, its read-only root, and every path the gateway writes on a volume.
    uid = int(found(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1))
    assert spec["securityContext"]["runAsUser"] == uid and spec["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}

    def volume_of(path: str) -> tuple[dict, str]:
        mount = max((m for m in mounts if path.startswith(m.rstrip("/") + "/")), key=len)
        return mounts[mount], path[len(mount) :].lstrip("/")

    scratch, _ = volume_of(env["PROMETHEUS_MULTIPROC_DIR"])
    assert "emptyDir" in scratch
    # The system token: a file of the Secret's volume, the key present in the Secret.
    volume, file = volume_of(env["WRAPGATE_SYSTEM_TOKEN_FILE"])
    key = next(i["key"] for i in volume["secret"]["items"] if i["path"] == file)
    assert secret_value(objects, volume["secret"]["secretName"], key) == "k8s-System-Token-1"
    assert "WRAPGATE_SYSTEM_TOKEN" not in env
    # Prometheus presents the token the gateway checks.
    endpoint = one(objects, "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    assert secret_value(objects, credentials["name"], credentials["key"]) == env["WRAPGATE_METRICS_TOKEN"]


def test_the_ingress_never_cuts_a_call_and_keeps_the_operations_routes_inside(objects):
    ingress = one(objects, "Ingress")
    settings = image_settings(pod_env(objects))
    notes = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[f"nginx.ingress.kubernetes.io/{timeout}"]) > settings["call_timeout"]
    size = found(r"^(\d+)m$", notes["nginx.ingress.kubernetes.io/proxy-body-size"]).group(1)
    assert int(size) * 1024 * 1024 >= settings["max_body_bytes"]  # the gateway answers 413 past it
    (rule,) = ingress["spec"]["rules"]
    paths = {p["path"]: p for p in rule["http"]["paths"]}
    assert set(paths) == {"/function", "/healthCheck", "/"}
    assert {p["pathType"] for p in paths.values()} == {"Exact"}  # no prefix reaches /metrics
    service = one(objects, "Service", "wrapgate")
    for path in paths.values():
        backend = path["backend"]["service"]
        assert backend["name"] == "wrapgate"
        assert backend["port"]["name"] in [p["name"] for p in service["spec"]["ports"]]
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def labels_select(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_selector_picks_the_gateway_pods_only(objects):
    gateway = pod_labels(one(objects, "Deployment", "wrapgate"))
    redis = pod_labels(one(objects, "StatefulSet", "wrapgate-redis"))
    selectors = [
        one(objects, "Deployment", "wrapgate")["spec"]["selector"]["matchLabels"],
        one(objects, "Service", "wrapgate")["spec"]["selector"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(objects, "NetworkPolicy", "wrapgate")["spec"]["podSelector"]["matchLabels"],
        one(objects, "PodMonitor")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert labels_select(selector, gateway) and not labels_select(selector, redis)
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == "wrapgate"
    # Redis: only the gateway pods may connect.
    (rule,) = one(objects, "NetworkPolicy", "wrapgate-redis")["spec"]["ingress"]
    (peer,) = rule["from"]
    assert labels_select(peer["podSelector"]["matchLabels"], gateway)
    # The gateway: the ingress controller's and the monitoring namespace's pods only.
    sources = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in one(objects, "NetworkPolicy", "wrapgate")["spec"]["ingress"]
        for peer in rule["from"]
    ]
    assert sorted(sources) == ["ingress-nginx", "monitoring"]
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] < one(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"]


def test_every_pod_meets_the_restricted_pod_security_standard(objects):
    """The example namespace enforces "restricted": a pod that breaks it is never created."""
    namespace = one(objects, "Namespace")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 2
    allowed_volumes = {"emptyDir", "secret", "configMap", "projected", "downwardAPI", "persistentVolumeClaim"}
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= allowed_volumes, volume
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
            assert context["readOnlyRootFilesystem"] is True
            assert "hostPort" not in str(container["ports"])
            assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


def test_the_base_image_is_this_release_of_wrapgate():
    import configparser

    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "setup.cfg")
    version = metadata["metadata"]["version"]
    assert gateway_container(render(KUBERNETES / "base"))["image"] == f"wrapgate:{version}"


def test_the_users_image_adds_a_connector_to_the_wrapgate_image(objects):
    base = render(KUBERNETES / "base")
    base_image = gateway_container(base)["image"]
    lines = [
        line
        for line in (KUBERNETES / OVERLAY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == f"FROM {base_image}"
    assert any(re.match(r"RUN pip install .*wrapgate-acme", line) for line in lines)
    assert not any(line.startswith("USER") for line in lines)  # still the image's non-root user
    # The connectors the image bundles (plugins/hooks-example is an example, not in the image).
    dockerfile = (ROOT / "Dockerfile").read_text()
    bundled = sorted(
        p.name
        for p in (ROOT / "plugins").iterdir()
        if (p / "setup.cfg").exists() and f"./plugins/{p.name}" in dockerfile
    )
    plugins = pod_env(objects)["WRAPGATE_PLUGINS"].split(",")
    assert set(bundled) < set(plugins) and "acme" in plugins
    assert pod_env(objects)["WRAPGATE_STRICT_PLUGINS"] == "true"


@pytest.mark.slow
def test_the_pod_serves_and_drains_as_rendered(objects, testkit_site, tmp_path):
    """The image's command with the pod's environment: volumes become folders here, the
    Redis URL a real local redis-server, the user's plugins the test plugins."""
    redis = RedisServer(tmp_path).start()
    env = pod_env(objects)
    container = gateway_container(objects)
    spec = one(objects, "Deployment", "wrapgate")["spec"]["template"]["spec"]
    root = tmp_path / "pod"
    for mount in container["volumeMounts"]:  # each mount a folder under root
        (root / mount["mountPath"].lstrip("/")).mkdir(parents=True)
    token_file = root / env["WRAPGATE_SYSTEM_TOKEN_FILE"].lstrip("/")
    token_file.write_text(
        secret_value(objects, spec["volumes"][0]["secret"]["secretName"], "system-token") + "\n"
    )
    port = free_port()
    pod = {
        **env,
        "WRAPGATE_SYSTEM_TOKEN_FILE": str(token_file),
        "PROMETHEUS_MULTIPROC_DIR": str(root / env["PROMETHEUS_MULTIPROC_DIR"].lstrip("/")),
        "WRAPGATE_BIND": f"127.0.0.1:{port}",
        "WRAPGATE_REDIS_URL": redis.url,
        "WRAPGATE_PLUGINS": "kit",
        "WRAPGATE_LIMIT_WAIT": "0",  # the second call of a busy connection gets its 429 at once
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WRAPGATE_")}
    pod = {**clean, **dockerfile_env(), **pod}
    # The image's /opt/wrapgate/bin is this venv's bin here.
    pod["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    pod["PYTHONPATH"] = f"{testkit_site}{os.pathsep}{TESTKIT}"
    log = open(tmp_path / "pod.log", "wb")
    proc = subprocess.Popen(dockerfile_command(), cwd=ROOT, env=pod, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url, proc), 60, what="the pod's gateway")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert requests.get(url + container[probe]["httpGet"]["path"], timeout=5).status_code == 200
        token = token_file.read_text().strip()
        assert post(url, {"diy": True, "function": "kit.ping", "options": {}}, token=token).status_code == 200
        metrics = env["WRAPGATE_METRICS_TOKEN"]
        _busy_connection_gets_429(url, token, metrics)
        assert requests.get(url + "/metrics", timeout=5).status_code == 401
        exposed = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {metrics}"}, timeout=5)
        assert exposed.status_code == 200
        families = set(re.findall(r"^(wrapgate_\w+?)(?:_bucket|_count|_sum)?\{", exposed.text, re.M))
        assert rule_metrics(objects) <= families, rule_metrics(objects) - families
        # SIGTERM, as the kubelet sends it: /readyz 503 at once, calls still served during the drain.
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: requests.get(url + "/readyz", timeout=5).status_code == 503, 10, what="readyz 503")
        assert post(url, {"diy": True, "function": "kit.ping", "options": {}}, token=token).status_code == 200
        drain = float(env["WRAPGATE_DRAIN_DELAY"])
        assert proc.wait(drain + 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
        redis.stop()


def _answers(url, proc) -> bool:
    assert proc.poll() is None, "the pod's command exited: " + "see pod.log"
    try:
        return requests.get(url + "/livez", timeout=2).ok
    except (requests.ConnectionError, requests.Timeout):  # bound, workers still booting
        return False


def _busy_connection_gets_429(url, token, metrics_token):
    """One call holds the connection's only slot (level 1): the next one is refused at once."""
    connection = {"_id": "conn-k8s", "concurrencyLevel": 1}
    answers = []

    def slow():
        options = {"connection": connection, "configuration": {"sleep": 3}}
        body = {"diy": True, "function": "kit.export", "options": options}
        answers.append(post(url, body, token=token))

    def holding():
        scrape = requests.get(
            url + "/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=5
        )
        return 'wrapgate_connection_in_flight{connection="conn-k8s"} 1.0' in scrape.text

    holder = threading.Thread(target=slow)
    holder.start()
    try:
        wait_until(holding, 20, interval=0.1, what="the slow call in flight")
        body = {"diy": True, "function": "kit.ping", "options": {"connection": connection}}
        refused = post(url, body, token=token)
        assert refused.status_code == 429, refused.text
    finally:
        holder.join(30)
    assert answers[0].status_code == 200, answers[0].text


# -- alerts -------------------------------------------------------------------------------


def rules(objects) -> list[dict]:
    return [rule for group in one(objects, "PrometheusRule")["spec"]["groups"] for rule in group["rules"]]


def rule_metrics(objects) -> set[str]:
    """wrapgate_* series names in the alert rules."""
    return {n for r in rules(objects) for n in re.findall(r"\b(wrapgate_\w+)", r["expr"])}


def test_alert_outcomes_are_error_codes_of_the_gateway(objects):
    codes = {
        getattr(obj, "code", None)
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, Exception)
    }
    outcomes = {o for r in rules(objects) for o in re.findall(r'outcome="(\w+)"', r["expr"])}
    assert outcomes and outcomes <= codes


def _annotations(rule: dict, labels: dict) -> dict:
    return {
        key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], value)
        for key, value in rule["annotations"].items()
    }


def _series(name: str, labels: dict, values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def test_alert_rules_fire_on_what_they_are_about(objects, tmp_path):
    by_name = {r["alert"]: r for r in rules(objects)}
    ns = {"namespace": "wrapgate"}
    pod = {**ns, "pod": "wrapgate-5c9d-abcde"}
    http = "wrapgate_http_requests_total"
    calls = "wrapgate_calls_total"
    restarts = "kube_pod_container_status_restarts_total"
    gateway = {**pod, "container": "gateway"}
    unavailable = {**pod, "connector": "sql", "function": "export", "outcome": "limiter_unavailable"}
    cases = [
        # (alert, input series, labels of the expected alert or None: must stay silent)
        (
            "WrapgateHigh5xxRate",
            [
                _series(http, {**pod, "route": "/function", "status": "500"}, "0+10x40"),
                _series(http, {**pod, "route": "/function", "status": "200"}, "0+50x40"),
            ],
            ns,
        ),
        (  # a draining pod's /readyz 503s are no error
            "WrapgateHigh5xxRate",
            [
                _series(http, {**pod, "route": "/readyz", "status": "503"}, "0+60x40"),
                _series(http, {**pod, "route": "/function", "status": "200"}, "0+50x40"),
            ],
            None,
        ),
        (
            "WrapgateDeadlineExceeded",
            [
                _series(http, {**pod, "route": "/function", "status": "504"}, "0+2x40"),
                _series(http, {**pod, "route": "/function", "status": "200"}, "0+50x40"),
            ],
            ns,
        ),
        (
            "WrapgateConnectionRejected",
            [_series("wrapgate_concurrency_rejections_total", {**pod, "connection": "c1"}, "0+30x40")],
            {**ns, "connection": "c1"},
        ),
        (
            "WrapgateConnectionRejected",  # one 429 now and then is the limit working
            [_series("wrapgate_concurrency_rejections_total", {**pod, "connection": "c1"}, "0+1x40")],
            None,
        ),
        (
            "WrapgateLimiterUnavailable",
            [_series(calls, unavailable, "0+5x40")],
            ns,
        ),
        (
            "WrapgatePluginLoadFailed",
            [_series("wrapgate_plugin_loaded", {**pod, "plugin": "acme"}, "0x40")],
            {**pod, "plugin": "acme"},
        ),
        (
            "WrapgatePluginLoadFailed",
            [_series("wrapgate_plugin_loaded", {**pod, "plugin": "acme"}, "1x40")],
            None,
        ),
        (
            "WrapgateRestarting",
            [_series(restarts, gateway, "0x30 1 2 3 4 5")],
            gateway,
        ),
        (  # one restart (a node's reboot, say) is not a pattern
            "WrapgateRestarting",
            [_series(restarts, gateway, "0x30 1x10")],
            None,
        ),
    ]
    assert {name for name, _, _ in cases} == set(by_name)  # every alert has a case
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": one(objects, "PrometheusRule")["spec"]["groups"]}))
    tests = []
    for name, series, labels in cases:
        rule = by_name[name]
        expected = []
        if labels is not None:
            expected = [
                {"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": _annotations(rule, labels)}
            ]
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": "35m", "alertname": name, "exp_alerts": expected}],
            }
        )
    unit = tmp_path / "rules_test.yaml"
    unit.write_text(
        yaml.safe_dump({"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": tests})
    )
    promtool = tool("promtool", TOOLS / "promtool")
    checked = run([promtool, "check", "rules", str(rule_file)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run([promtool, "test", "rules", str(unit)])
    assert tested.returncode == 0, tested.stdout + tested.stderr
