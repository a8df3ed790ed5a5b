#!/usr/bin/env bash
# Install site-agent on an HPC login node without containers: a venv under --prefix holding
# site-agent (from the checkout this script lives in) and globus-compute-endpoint, then
# `site-agent install` writes the endpoint directory. Idempotent: a second run changes nothing.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install-login-node.sh --site NAME [--prefix DIR] [--endpoint-dir DIR] [--python PY]
                             [--pilot-dir DIR] [--cvmfsexec] [--allow-root] [--force]

  --site NAME         site profile (perlmutter, polaris, aurora, frontier, local, or a YAML path)
  --prefix DIR        where the venv goes (default: ${XDG_DATA_HOME:-~/.local/share}/site-agent)
  --endpoint-dir DIR  endpoint directory (default: ~/.globus_compute/<endpoint name of the profile>)
  --python PY         Python 3.11+ to build the venv with (default: python3)
  --pilot-dir DIR     an unpacked PanDA pilot3 release (with pilot.py) for the workers
                      (default: fetch the installed panda-pilot's release into the venv)
  --cvmfsexec         on cvmfsexec sites, also clone github.com/cvmfs/cvmfsexec and run its
                      makedist where the pilot looks (needs outbound access; without it,
                      `site-agent install` prints the commands to run)
  --allow-root        run as root anyway (the endpoint then runs as root: not recommended)
  --force             replace endpoint files edited by hand (a backup is kept)
EOF
}

die() {
  echo "install-login-node.sh: error: $*" >&2
  exit 2
}

site="" endpoint_dir="" pilot_dir="" allow_root=0 force=0 cvmfsexec=0 python="python3"
prefix="${XDG_DATA_HOME:-$HOME/.local/share}/site-agent"
while (($#)); do
  case "$1" in
    --site | --prefix | --endpoint-dir | --python | --pilot-dir)
      (($# >= 2)) || die "$1 needs a value"
      case "$1" in
        --site) site="$2" ;;
        --prefix) prefix="$2" ;;
        --endpoint-dir) endpoint_dir="$2" ;;
        --python) python="$2" ;;
        --pilot-dir) pilot_dir="$2" ;;
      esac
      shift 2
      ;;
    --allow-root) allow_root=1 && shift ;;
    --force) force=1 && shift ;;
    --cvmfsexec) cvmfsexec=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[[ -n "$site" ]] || die "--site is required (see --help)"
# values below reach pip, venv and site-agent as single words: keep them plain
path_re='^[A-Za-z0-9_./~+@:][A-Za-z0-9_./~+@:-]{0,511}$'
[[ "$site" =~ $path_re ]] || die "--site: '$site' has characters that are not allowed"
[[ "$prefix" =~ $path_re ]] || die "--prefix: '$prefix' has characters that are not allowed"
[[ -z "$endpoint_dir" || "$endpoint_dir" =~ $path_re ]] ||
  die "--endpoint-dir: '$endpoint_dir' has characters that are not allowed"
[[ -z "$pilot_dir" || "$pilot_dir" =~ $path_re ]] ||
  die "--pilot-dir: '$pilot_dir' has characters that are not allowed"
[[ -z "$pilot_dir" || -f "$pilot_dir/pilot.py" ]] || die "--pilot-dir: no pilot.py in $pilot_dir"
if [[ "$(id -u)" == 0 && $allow_root == 0 ]]; then
  die "refusing to run as root: the endpoint runs as the user who installs it; log in as that user (or pass --allow-root)"
fi
command -v "$python" >/dev/null || die "--python: '$python' not found"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "--python: $("$python" -V 2>&1) is too old; site-agent needs Python 3.11+ (load a newer python module)"

# everything written here is the user's alone: the venv and endpoint files hold proxy settings
umask 077
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -f "$src/pyproject.toml" && -d "$src/agent/siteagent" ]] || die "$src is not a site-agent checkout"
venv="$prefix/venv"
stamp="$venv/.site-agent-source"

# what pip would install: the package version and a hash of every source file it is built from
source_id() {
  local version digest
  version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/agent/siteagent/__init__.py")"
  digest="$(cd "$src" && find pyproject.toml README.md agent site-profiles cvmfs -type f \
    ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | sha256sum | cut -c1-16)"
  echo "site-agent $version source $digest"
}

if [[ -x "$venv/bin/python" ]]; then
  echo "unchanged   $venv"
else
  mkdir -p "$prefix"
  "$python" -m venv "$venv"
  echo "created     $venv"
fi

want="$(source_id)"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/site-agent" ]]; then
  echo "unchanged   $want"
else
  # pip is quiet and the first run takes about a minute: say so before, and how long after
  echo "pip         installing $want and its dependencies (about a minute the first time) ..."
  started=$SECONDS
  if [[ -x "$venv/bin/site-agent" ]]; then
    # same version number, new source: replace the package itself, then add any new dependency
    "${pip[@]}" install --force-reinstall --no-deps "$src"
  fi
  "${pip[@]}" install "$src[pilot]"
  tmp="$(mktemp "$stamp.XXXXXX")"
  echo "$want" >"$tmp" && mv -f "$tmp" "$stamp"
  echo "installed   $want ($((SECONDS - started)) s)"
fi

if [[ -z "$pilot_dir" ]]; then
  # pilot3's pilot.py comes only in its source release; fetched once, kept in the venv
  pilot_version() { tr -d '[:space:]' <"$venv/pilot3/PILOTVERSION" 2>/dev/null || true; }
  before="$(pilot_version)"
  started=$SECONDS
  if PYTHON="$venv/bin/python" "$src/scripts/get-panda-pilot.sh" "$venv/pilot3" >/dev/null; then
    after="$(pilot_version)"
    if [[ "$before" == "$after" ]]; then
      echo "unchanged   $venv/pilot3 (PanDA pilot3 $after)"
    else
      echo "$([[ -n "$before" ]] && echo "updated  " || echo "installed")   $venv/pilot3 (PanDA pilot3 $after, $((SECONDS - started)) s)"
    fi
  else
    echo "warning: could not fetch PanDA pilot3 (no package index?); run again with --pilot-dir DIR" >&2
  fi
else
  echo "using       $pilot_dir (PanDA pilot3 from --pilot-dir)"
fi

args=(install --site "$site")
[[ -z "$pilot_dir" ]] || args+=(--pilot-dir "$pilot_dir")
[[ -z "$endpoint_dir" ]] || args+=(--endpoint-dir "$endpoint_dir")
((force == 0)) || args+=(--force)
((cvmfsexec == 0)) || args+=(--cvmfsexec)
"$venv/bin/site-agent" "${args[@]}"

echo "site-agent is in $venv/bin; add it to PATH with:"
echo "  export PATH=\"$venv/bin:\$PATH\""
