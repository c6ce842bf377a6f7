#!/usr/bin/env bash
# Make a Debian machine able to build and run the stack's containers, from nothing:
# Docker's engine (Debian's docker.io), the compose and buildx plugins (Debian trixie's
# static builds where the release has none), a running dockerd, and the Python base image
# the Dockerfiles build on. Where Docker Hub cannot be reached, that image is built from
# Debian's packages with the same Debian and Python (tagged $LOCAL_PYTHON_IMAGE). Idempotent:
# each step runs only when what it makes is missing. Needs root.
set -euo pipefail

OFFICIAL_PYTHON_IMAGE=python:3.11.11-slim-bookworm
LOCAL_PYTHON_IMAGE=${LOCAL_PYTHON_IMAGE:-local/python:3.11-slim-bookworm}
export DEBIAN_FRONTEND=noninteractive

apt_install() {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The Debian mirror this machine's apt uses (its main archive, not security's), or $DEBIAN_MIRROR.
debian_mirror() {
  [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
  apt-get update -qq
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' \
    | awk '$2 !~ /-/ { print $1; exit }'
}

if ! command -v dockerd >/dev/null; then
  echo "==> Installing Docker's engine (docker.io)"
  apt_install docker.io
fi

# Compose v2 and buildx are not packaged for bookworm; trixie's packages are static Go
# binaries (libc6 >= 2.34 only), fetched with a separate apt state so the system's sources
# stay as they are.
if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
  echo "==> Installing the compose and buildx plugins (Debian trixie's packages)"
  state=$(mktemp -d)
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) trixie main" \
    >"$state/sources.list"
  apt_opts=(-o "Dir::Etc::sourcelist=$state/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$state" && apt-get "${apt_opts[@]}" download docker-compose docker-buildx 2>/dev/null)
  dpkg -i "$state"/docker-compose_*.deb "$state"/docker-buildx_*.deb >/dev/null
  rm -rf "$state"
fi

if ! docker info >/dev/null 2>&1; then
  echo "==> Starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null || { tail -20 /var/log/dockerd.log; exit 1; }
fi

if docker image inspect "$OFFICIAL_PYTHON_IMAGE" >/dev/null 2>&1 \
  || docker image inspect "$LOCAL_PYTHON_IMAGE" >/dev/null 2>&1 \
  || docker pull -q "$OFFICIAL_PYTHON_IMAGE" >/dev/null 2>&1; then
  exit 0
fi
echo "==> $OFFICIAL_PYTHON_IMAGE cannot be pulled: building $LOCAL_PYTHON_IMAGE from Debian's packages"
command -v mmdebstrap >/dev/null || apt_install mmdebstrap
rootfs=$(mktemp --suffix=.tar)
trap 'rm -f "$rootfs"' EXIT
# merged-usr as bookworm installs it (without the hook, usrmerge pulls in perl); `python`
# where the official image has it.
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-venv,ca-certificates,netbase,tzdata \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --customize-hook='chroot "$1" ln -s /usr/bin/python3 /usr/local/bin/python' \
  bookworm "$rootfs" "$(debian_mirror)"
docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python"]' "$rootfs" "$LOCAL_PYTHON_IMAGE" >/dev/null
