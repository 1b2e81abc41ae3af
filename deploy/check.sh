#!/usr/bin/env bash
# Static checks of what deploy/ and the Dockerfile ship (no container registry, cluster or
# Prometheus server needed):
#
#   1. Dockerfile        hadolint, failing on any finding (style level and above)
#   2. compose           deploy/compose.yaml against the compose-spec JSON Schema, and no
#                        top-level `version:` (compose v2 syntax)
#   3. kubernetes        deploy/k8s/*.yaml: kubernetes-validate --strict for the built-in
#                        kinds; the ServiceMonitor against the Prometheus Operator's CRD
#                        (deploy/schemas/); every pod template against Pod Security
#                        "restricted" (deploy/checks/pod_security.py)
#   4. alert rules       promtool check rules deploy/alerts.yaml
#   5. alert tests       promtool test rules deploy/alerts_test.yaml
#   6. runbook           rules, RUNBOOK.md sections and unit tests agree
#                        (deploy/checks/alerts_runbook.py)
#   7. otel collector    deploy/otel-collector.yaml's pipelines name only defined
#                        components (deploy/checks/otel_pipelines.py; no collector binary
#                        is installable here, so the components' settings are unchecked)
#
# Tools: hadolint, check-jsonschema, kubernetes-validate, PyYAML (pinned in
# deploy/checks/requirements.txt: `pip install -r deploy/checks/requirements.txt`) and
# promtool (Debian: `apt-get install prometheus`). .ci/run installs them and runs this.
# Runs every check even after a failure, then lists what failed; exits 1 if anything did.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check NAME COMMAND...: run one check, print its output, remember a failure.
check() {
  local name=$1
  shift
  printf '[deploy-check] %s: %s\n' "$name" "$*"
  if "$@"; then
    printf '[deploy-check] %s: ok\n' "$name"
  else
    printf '[deploy-check] %s: FAILED (exit %s)\n' "$name" "$?" >&2
    failed+=("$name")
  fi
}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    printf '[deploy-check] missing tool %s: %s\n' "$1" "$2" >&2
    failed+=("tool $1")
    return 1
  fi
}

pip_hint="pip install -r deploy/checks/requirements.txt"
tools_ok=1
need hadolint "$pip_hint" || tools_ok=0
need check-jsonschema "$pip_hint" || tools_ok=0
need kubernetes-validate "$pip_hint" || tools_ok=0
need promtool "apt-get install prometheus" || tools_ok=0
python3 -c 'import yaml' 2>/dev/null || { echo "[deploy-check] missing PyYAML: $pip_hint" >&2; failed+=("PyYAML"); tools_ok=0; }
if [ "$tools_ok" = 1 ]; then
  printf '[deploy-check] %s; check-jsonschema %s; kubernetes-validate %s; %s\n' \
    "$(hadolint --version)" \
    "$(check-jsonschema --version | awk '{print $NF}')" \
    "$(kubernetes-validate --version 2>&1 | awk '{print $NF}')" \
    "$(promtool --version 2>&1 | head -n 1)"
fi

no_compose_version() {
  python3 - "$1" <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
if "version" in doc:
    sys.exit(f"{sys.argv[1]}: top-level `version:` is obsolete in compose v2; remove it")
EOF
}

# The Kubernetes manifests: built-in kinds for kubernetes-validate, Prometheus Operator
# kinds (which it has no schema for) for their CRD.
core=() operator=()
for f in deploy/k8s/*.yaml; do
  if grep -q '^apiVersion: monitoring.coreos.com/' "$f"; then operator+=("$f"); else core+=("$f"); fi
done
servicemonitors() {
  python3 deploy/checks/crd2jsonschema.py \
    deploy/schemas/monitoring.coreos.com_servicemonitors.yaml v1 > "$tmp/servicemonitor.json" \
    && check-jsonschema --schemafile "$tmp/servicemonitor.json" "$@"
}

if command -v hadolint >/dev/null 2>&1; then
  check dockerfile hadolint --failure-threshold style Dockerfile
fi
if command -v check-jsonschema >/dev/null 2>&1; then
  check compose-schema check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
  check compose-v2 no_compose_version deploy/compose.yaml
fi
if command -v kubernetes-validate >/dev/null 2>&1; then
  check k8s-schema kubernetes-validate --strict "${core[@]}"
fi
if [ "${#operator[@]}" -gt 0 ] && command -v check-jsonschema >/dev/null 2>&1; then
  check k8s-servicemonitor servicemonitors "${operator[@]}"
fi
check k8s-pod-security python3 deploy/checks/pod_security.py deploy/k8s/*.yaml
if command -v promtool >/dev/null 2>&1; then
  check alert-rules promtool check rules deploy/alerts.yaml
  check alert-tests promtool test rules deploy/alerts_test.yaml
fi
check alerts-runbook python3 deploy/checks/alerts_runbook.py \
  deploy/alerts.yaml deploy/RUNBOOK.md deploy/alerts_test.yaml
check otel-pipelines python3 deploy/checks/otel_pipelines.py deploy/otel-collector.yaml

if [ "${#failed[@]}" -gt 0 ]; then
  printf '[deploy-check] FAILED: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "[deploy-check] all deploy checks passed"
