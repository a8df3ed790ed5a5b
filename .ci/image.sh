#!/usr/bin/env bash
# CI image job (called by .ci/run, as root on a fresh Debian machine; caches nothing):
# podman + runc + mmdebstrap, a stand-in base (no container registry is reachable: Debian's
# python3 from the machine's own Debian mirror, imported into podman), the image built with
# scripts/build-image.sh (pip reaches the package index with the host's CA bundle and pip
# configuration lent read-only, never baked in), then in the image: --help, profiles list,
# smoke-test as the image user and as another uid, the fail-fast HOME check, and image mode end
# to end (tests/test_image_podman.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
t_start=$SECONDS
step() { echo "image: [$((SECONDS - t_start))s] $*"; }

# catatonit: the init of `podman run --init`, which image-mode worker pools use
apt_packages=(podman runc mmdebstrap catatonit uidmap)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
step "apt: podman runc mmdebstrap catatonit"

work=$(mktemp -d /tmp/site-agent-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
# crun refuses to start containers on this machine (cgroup hybrid mode), and podman's default
# ulimits exceed the sandbox's hard limits
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$work/containers.conf

# the Debian mirror this machine's apt uses (deb822 sources first, then sources.list)
mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "image: no Debian mirror in /etc/apt/sources.list(.d): cannot build the base" >&2; exit 1; }
base=localhost/debian-python:12
mmdebstrap --quiet --variant=apt \
  --include=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata \
  bookworm "$work/rootfs.tar" "$mirror"
podman import --quiet "$work/rootfs.tar" "$base" >/dev/null
rm -f "$work/rootfs.tar"
step "base $base from $mirror"

# pip in the build reaches the index through this machine's TLS interception: lend the host's
# CA bundle (bound over the base's own, so nothing of it stays). Where the host's pip uses another
# index than PyPI (a mirror), lend its pip configuration too: bound at the same paths, which
# leaves only empty mount points in the image, never the contents.
ca=/etc/ssl/certs/ca-certificates.crt
lend=(--lend "$ca")
if python3 -m pip config list 2>/dev/null | grep -Eq "index-url='https?://"; then
  for path in /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
    [ -e "$path" ] && lend+=(--lend "$path")
  done
fi
image=localhost/site-agent:latest
# tagged site-agent:ci and site-agent:latest; the build's output only when it fails
if ! scripts/build-image.sh --base "$base" --tag site-agent:ci --out "$work/site-agent.tar" \
  "${lend[@]}" >"$work/build.log" 2>&1; then
  cat "$work/build.log"
  exit 1
fi
size=$(podman image inspect --format '{{.Size}}' "$image")
step "image $image: $((size / 1000000)) MB, OCI archive $(($(stat -c %s "$work/site-agent.tar") / 1000000)) MB"
# nothing lent stays in the image: its CA bundle is the base's own
sums=$(for ref in "$base" "$image"; do
  podman run --rm --entrypoint /usr/bin/sha256sum "$ref" "$ca" | cut -d' ' -f1
done | sort -u | wc -l)
[ "$sums" = 1 ] || { echo "image: the CA bundle in the image is not the base's" >&2; exit 1; }

run() { podman run --rm "$@"; }
t0=$EPOCHREALTIME
run "$image" --help >/dev/null
step "--help in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}') s (podman run included)"
run "$image" profiles list --json | python3 -c 'import json, sys; names = {p["name"] for p in json.load(sys.stdin)}; assert {"local", "polaris", "perlmutter"} <= names, names'
step "profiles list --json"
run "$image" smoke-test
step "smoke-test as the image user"
home=$(mktemp -d "$work/home.XXXXXX")
chmod 0777 "$home"
run --user 12345:12345 -e HOME="$home" -v "$home:$home" "$image" smoke-test
step "smoke-test as uid 12345 with HOME=$home"
# apptainer's case: another uid and a HOME it cannot write: one line, exit 2, at once
set +e
out=$(run --user 12345:12345 "$image" smoke-test 2>&1)
rc=$?
set -e
if [ "$rc" != 2 ] || [ "$(printf '%s\n' "$out" | wc -l)" != 1 ] || [[ "$out" != *"apptainer run --home"* ]]; then
  echo "image: unwritable HOME: exit $rc, output: $out" >&2
  exit 1
fi
step "uid 12345 without a writable HOME: $out"

SITE_AGENT_TEST_IMAGE=$image .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_image_podman.py
step "image mode end to end on the local profile (real podman)"
podman rmi -f "$image" localhost/site-agent:ci "$base" >/dev/null
step "done"
