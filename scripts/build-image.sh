#!/usr/bin/env bash
# usage: build-image.sh [--base IMAGE] [--tag NAME] [--out FILE | --no-archive] [--lend PATH]...
#                       [--engine podman|docker]
# Builds the site-agent image from this checkout's Containerfile and saves it as an archive for
# `apptainer build` (podman: OCI archive; docker: docker archive), in one command wherever podman
# or docker runs.
#   --base IMAGE   the Containerfile's BASE_IMAGE (default python:3.11-slim from Docker Hub)
#   --tag NAME     image name (default site-agent:<version>, also tagged site-agent:latest)
#   --out FILE     the archive (default site-agent.tar in the current directory)
#   --lend PATH    bind PATH read-only into the build's RUN steps (podman only), e.g. the host's
#                  CA bundle or pip.conf where pip needs them; nothing lent ends up in the image
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
base="" tag="" out="site-agent.tar" engine="" lend=()
die() { echo "build-image: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --base) base=${2:?--base needs an image}; shift 2 ;;
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --no-archive) out=""; shift ;;
    --lend) [ -e "${2:-}" ] || die "--lend: ${2:-(none)} does not exist"; lend+=("$2"); shift 2 ;;
    --engine) engine=${2:?--engine needs podman or docker}; shift 2 ;;
    -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
if [ -z "$engine" ]; then
  engine=$(command -v podman >/dev/null && echo podman || { command -v docker >/dev/null && echo docker; } || true)
  [ -n "$engine" ] || die "neither podman nor docker on PATH"
fi
case $engine in podman | docker) ;; *) die "--engine: '$engine' is not podman or docker" ;; esac
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/agent/siteagent/__init__.py")
[ -n "$version" ] || die "no __version__ in $src/agent/siteagent/__init__.py"
tag=${tag:-site-agent:$version}

args=(build -f "$src/Containerfile" -t "$tag" -t "${tag%%:*}:latest")
[ -n "$base" ] && args+=(--build-arg "BASE_IMAGE=$base")
if ((${#lend[@]})); then
  [ "$engine" = podman ] || die "--lend needs podman (docker build has no volumes)"
  for path in "${lend[@]}"; do
    path=$(realpath -s "$path")
    args+=(-v "$path:$path:ro")
  done
fi
t0=$SECONDS
"$engine" "${args[@]}" "$src"
echo "build-image: built $tag in $((SECONDS - t0)) s"
if [ -n "$out" ]; then
  rm -f "$out"
  if [ "$engine" = podman ]; then
    podman save --format oci-archive -o "$out" "$tag"
    echo "build-image: $out; on the site: apptainer build site-agent.sif oci-archive://$out"
  else
    docker save -o "$out" "$tag"
    echo "build-image: $out; on the site: apptainer build site-agent.sif docker-archive://$out"
  fi
fi
