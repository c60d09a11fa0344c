#!/usr/bin/env python3
"""Renders every kustomize overlay (kubectl's built-in kustomize), validates each object
against the Kubernetes JSON schemas that the PyPI package kubernetes-validate bundles
(strict: unknown fields fail; offline), and checks what the schemas cannot: labels and
selectors, probes on the admin port, the restricted securityContext, the drain fitting in
the grace period, resources, volumes, and that the ConfigMap's config.toml is one scrubgate
accepts. Each check is also run on a broken copy, to show it can fail.

Run from scripts/test with the .venv python (PyYAML and kubernetes-validate come from
deploy/requirements.txt):  .venv/bin/python deploy/kubernetes/check.py
"""
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OVERLAYS = ["overlays/staging", "overlays/production"]
# The oldest and newest Kubernetes releases the manifests are checked against.
VERSIONS = ["1.30.0", "1.37.0"]
NAME_LABELS = {"app.kubernetes.io/name": "scrubgate", "app.kubernetes.io/part-of": "scrubgate"}


def render(overlay):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        if os.environ.get("SCRUBGATE_SKIP_KUBERNETES_RENDER") == "1":
            print("SKIPPED: kubectl not found, overlays not rendered", file=sys.stderr)
            sys.exit(0)
        sys.exit("kubectl not found: its built-in kustomize renders the overlays")
    out = subprocess.run(
        [kubectl, "kustomize", os.path.join(HERE, overlay)],
        check=True, capture_output=True, text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def schema_errors(docs):
    errors = []
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no bundled schema; checked by check_servicemonitor
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                errors.append(f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error}")
    return errors


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def subset(small, big):
    return all(big.get(k) == v for k, v in small.items())


def check(docs):
    """Returns the problems found in one rendered overlay (empty: all good)."""
    problems = []

    def expect(ok, message):
        if not ok:
            problems.append(message)

    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        expect(subset(NAME_LABELS, labels), f"{doc['kind']}/{doc['metadata']['name']}: labels {labels}")

    sts = one(docs, "StatefulSet")
    pod = sts["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    expect(subset(sts["spec"]["selector"]["matchLabels"], pod_labels), "StatefulSet selector does not match its pods")
    expect(sts["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "scrubgate", "selector lacks the name label")
    services = [d for d in docs if d["kind"] == "Service"]
    expect(any(s["metadata"]["name"] == sts["spec"]["serviceName"] for s in services), "serviceName names no Service")
    for service in services:
        expect(subset(service["spec"]["selector"], pod_labels), f"Service {service['metadata']['name']} selects no pod")
    pdb = one(docs, "PodDisruptionBudget")
    expect(subset(pdb["spec"].get("selector", {}).get("matchLabels", {"": "none"}), pod_labels), "PDB selects no pod")
    hpa = one(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    expect((target["kind"], target["name"]) == ("StatefulSet", sts["metadata"]["name"]), "HPA targets something else")
    expect([m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"], "HPA scales on something other than CPU")
    expect(hpa["spec"]["minReplicas"] >= 2 and pdb["spec"].get("maxUnavailable") == 1, "fewer than 2 replicas or PDB allows more than one down")

    # The config the pods run.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    cm_name = volumes["config"]["configMap"]["name"]
    cm = one(docs, "ConfigMap", cm_name)
    config = tomllib.loads(cm["data"]["config.toml"])
    drain = config["server"]["shutdown_timeout_secs"]
    main_port = port_of(config["server"]["listen"])
    admin_port = port_of(config["admin"]["listen"])
    expect(config["admin"]["listen"].startswith("0.0.0.0:"), "admin listener unreachable for the kubelet's probes")
    expect(not config.get("metrics", {}).get("on_main_listener", False), "metrics on the main listener")

    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expect(ports == {"http": main_port, "admin": admin_port}, f"container ports {ports} vs config {main_port}/{admin_port}")
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")]:
        get = container.get(probe, {}).get("httpGet", {})
        expect(get.get("path") == path and get.get("port") == "admin", f"{probe} is not {path} on the admin port: {get}")
    main = one(docs, "Service", "scrubgate")
    expect([p["targetPort"] for p in main["spec"]["ports"]] == ["http"], "the SDK-facing Service exposes more than the ingest port")

    # Drain: preStop first (endpoints go), then SIGTERM and the drain, within the grace period.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    expect(pre_stop[0] == "sleep", f"preStop is not a sleep: {pre_stop}")
    pre_stop_secs = int(pre_stop[1]) if pre_stop[0] == "sleep" else 0
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    expect(grace > pre_stop_secs + drain, f"terminationGracePeriodSeconds {grace} <= preStop {pre_stop_secs} + drain {drain}")

    # Restricted securityContext.
    pod_sc = pod["spec"]["securityContext"]
    sc = container["securityContext"]
    expect(pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser", 0) != 0, "pod may run as root")
    expect(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "no RuntimeDefault seccomp profile")
    expect(sc.get("readOnlyRootFilesystem") is True, "root file system is writable")
    expect(sc.get("allowPrivilegeEscalation") is False, "privilege escalation allowed")
    expect(sc.get("privileged", False) is False, "privileged")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), "capabilities not all dropped")
    expect(pod["spec"].get("automountServiceAccountToken") is False, "service account token mounted")

    # Resources from BENCHMARKS.md.
    resources = container["resources"]
    for kind in ("requests", "limits"):
        expect(set(resources.get(kind, {})) >= {"cpu", "memory"}, f"no cpu/memory {kind}")

    # Spool and audit trail on the per-replica volume; the rest of the file system read-only.
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for key, path in [("spool.dir", config["spool"]["dir"]), ("audit.path", config["audit"]["path"])]:
        owner = [name for mount, name in mounts.items() if path.startswith(mount.rstrip("/") + "/")]
        expect(len(owner) == 1 and owner[0] in claims, f"{key} {path} is not on a volumeClaimTemplate")
    expect(sts["spec"].get("persistentVolumeClaimRetentionPolicy", {}).get("whenScaled") == "Retain", "volumes deleted on scale-down: spools lost")

    # The HMAC key comes from the Secret, by a key the Secret has.
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            secret = secrets.get(ref["name"], {})
            keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
            expect(ref["key"] in keys, f"{env['name']} refers to a missing secret key {ref}")
    expect(any(e["name"] == "SCRUBGATE_HASH_KEY" for e in container.get("env", [])), "no HMAC key from the Secret")

    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        selected = [s for s in services if subset(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        expect(len(selected) == 1, f"ServiceMonitor selects {len(selected)} Services")
        for endpoint in monitor["spec"]["endpoints"]:
            names = [p["name"] for s in selected for p in s["spec"]["ports"]]
            expect(endpoint["port"] == "admin" and endpoint["port"] in names and endpoint["path"] == "/metrics", f"ServiceMonitor endpoint {endpoint}")
    return problems


def check_config_accepted(docs):
    """The ConfigMap's config.toml passes `scrubgate check-config` (the real validation)."""
    cm = one(docs, "ConfigMap")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.toml")
        with open(path, "w") as f:
            f.write(cm["data"]["config.toml"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCRUBGATE_")}
        env["SCRUBGATE_HASH_KEY"] = "a-test-key-of-32-bytes-0123456789"
        result = subprocess.run(
            ["cargo", "run", "--quiet", "--locked", "--bin", "scrubgate", "--", "check-config", "--config", path],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
    return [] if result.returncode == 0 else [f"scrubgate check-config refuses the ConfigMap: {result.stderr.strip()}"]


def breakages(docs):
    """Broken copies, each of which the checks above must reject."""
    def sts(d):
        return one(d, "StatefulSet")["spec"]["template"]["spec"]

    def container(d):
        return sts(d)["containers"][0]

    yield "unknown field", "schema", lambda d: container(d).update(livenessProb=container(d)["livenessProbe"])
    yield "writable root", "check", lambda d: container(d)["securityContext"].update(readOnlyRootFilesystem=False)
    yield "readiness on main port", "check", lambda d: container(d)["readinessProbe"]["httpGet"].update(port="http")
    yield "grace too short", "check", lambda d: sts(d).update(terminationGracePeriodSeconds=30)
    yield "label dropped", "check", lambda d: one(d, "Service", "scrubgate")["metadata"]["labels"].pop("app.kubernetes.io/name")
    yield "capability added", "check", lambda d: container(d)["securityContext"]["capabilities"].update(add=["NET_ADMIN"])


def main():
    passed = failed = 0

    def report(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}")

    for overlay in OVERLAYS:
        docs = render(overlay)
        kinds = sorted(d["kind"] for d in docs)
        print(f"== {overlay}: {', '.join(kinds)}")
        errors = schema_errors(docs)
        for error in errors:
            print(f"     {error}")
        report(not errors, f"{overlay}: {len(docs)} objects valid against Kubernetes {' and '.join(VERSIONS)} (strict)")
        problems = check(docs)
        for problem in problems:
            print(f"     {problem}")
        report(not problems, f"{overlay}: labels, selectors, probes, securityContext, drain, resources, volumes")
        problems = check_config_accepted(docs)
        for problem in problems:
            print(f"     {problem}")
        report(not problems, f"{overlay}: scrubgate check-config accepts the ConfigMap")
        for name, stage, breakage in breakages(docs):
            broken = copy.deepcopy(docs)
            breakage(broken)
            caught = schema_errors(broken) if stage == "schema" else check(broken)
            report(bool(caught), f"{overlay}: a broken copy ({name}) is rejected")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
