#!/usr/bin/env bash
# Validate Dockerfiles, docker-compose.yml and k8s/ offline with real validators. Every
# check runs, even after one fails, and the script fails at the end if any did.
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
check "hadolint" "$B/hadolint" Dockerfile.gateway training/Dockerfile
check "docker-compose config" "$B/docker-compose" -f docker-compose.yml config -q
check "compose-spec schema" "$B/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
check "yamllint" "$B/yamllint" -c .yamllint.yaml k8s docker-compose.yml .yamllint.yaml .checkov.yaml
check "checkov k8s" "$B/checkov" -d k8s --framework kubernetes --skip-download --compact \
  --quiet --config-file .checkov.yaml
check "checkov dockerfiles" "$B/checkov" -f Dockerfile.gateway -f training/Dockerfile \
  --framework dockerfile --skip-download --compact --quiet --config-file .checkov.yaml

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "All deployment checks passed."
