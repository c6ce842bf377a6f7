#!/usr/bin/env bash
# Validate Dockerfiles, docker-compose.yml, k8s/ and monitoring/ offline with real validators.
# Every check runs, even after one fails, and the script fails at the end if any did.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${DEPLOY_VENV:-.venv-deploy}
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.37.0}
if [ ! -f "$VENV/.installed" ] || [ requirements-deploy.txt -nt "$VENV/.installed" ]; then
  echo "==> Installing validators into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet -r requirements-deploy.txt \
    && touch "$VENV/.installed" || exit 1
fi
B="$VENV/bin"
failed=()

check() {
  local name=$1; shift
  echo "==> $name"
  if ! "$@"; then failed+=("$name"); fi
}

# kubernetes-validate stops at the first error of each object: run it file by file so
# every file's problems are reported. k8s/*/ holds alternatives (e.g. k8s/storage/) that
# `kubectl apply -f k8s/` does not apply; they are validated all the same.
for manifest in k8s/*.yaml k8s/*/*.yaml; do
  [ -e "$manifest" ] || continue
  check "kubernetes-validate $manifest" "$B/kubernetes-validate" --strict --quiet \
    -k "$KUBERNETES_VERSION" "$manifest"
done
check "hadolint" "$B/hadolint" Dockerfile.gateway training/Dockerfile serving/Dockerfile
check "docker-compose config" "$B/docker-compose" -f docker-compose.yml config -q
check "docker-compose config with the local server" "$B/docker-compose" -f docker-compose.yml \
  -f compose.local-server.yml config -q
check "compose-spec schema" "$B/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
check "yamllint" "$B/yamllint" -c .yamllint.yaml k8s docker-compose.yml compose.local-server.yml \
  .yamllint.yaml .checkov.yaml \
  monitoring
check "checkov k8s" "$B/checkov" -d k8s --framework kubernetes --skip-download --compact \
  --quiet --config-file .checkov.yaml
check "checkov dockerfiles" "$B/checkov" -f Dockerfile.gateway -f training/Dockerfile -f serving/Dockerfile \
  --framework dockerfile --skip-download --compact --quiet --config-file .checkov.yaml

# Prometheus' own parser, from Debian's prometheus package (promtool is not on PyPI).
PROMTOOL=${PROMTOOL:-promtool}
DASHBOARD=monitoring/grafana/dashboards/mnist.json

# promtool has no command that parses a bare expression in every version: write each PromQL
# expression of the dashboard (panels and annotations) as a recording rule, with Grafana's
# interval variables replaced by durations, and let `promtool check rules` parse them all.
dashboard_promql() {
  local rules status
  rules=$(mktemp --suffix=.yml) || return 1
  python3 - "$DASHBOARD" >"$rules" <<'PY'
import json, re, sys

GRAFANA_INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
exprs = []

def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str) and value.strip():
                exprs.append(value)
            else:
                walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)

walk(json.load(open(sys.argv[1])))
rules = []
for number, expr in enumerate(exprs):
    expr = GRAFANA_INTERVALS.sub("5m", expr)
    if "$" in expr:
        sys.exit(f"{sys.argv[1]}: a variable promtool cannot stand in for: {expr}")
    rules.append({"record": f"dashboard:expr_{number}", "expr": expr})
if not rules:
    sys.exit(f"{sys.argv[1]}: no PromQL expression found")
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, sys.stdout)  # JSON is YAML
PY
  status=$?
  [ $status -eq 0 ] && { "$PROMTOOL" check rules "$rules"; status=$?; }
  rm -f "$rules"
  return $status
}

if command -v "$PROMTOOL" >/dev/null 2>&1; then
  check "promtool check config" "$PROMTOOL" check config monitoring/prometheus.yml
  check "dashboard PromQL (promtool)" dashboard_promql
else
  echo "==> promtool: not found; install Debian's prometheus package (apt-get install prometheus)"
  failed+=("promtool (not installed)")
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "All deployment checks passed."
