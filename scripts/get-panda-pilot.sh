#!/usr/bin/env bash
# usage: get-panda-pilot.sh DEST [VERSION]
# Unpack PanDA pilot3 (pilot.py and its `pilot` package) into DEST from the panda-pilot source
# distribution on the package index: the wheel ships the package but not pilot.py, the script
# the pilot is started with. VERSION defaults to the installed panda-pilot. Idempotent.
# `site-agent pilot --pilot-dir DEST` (or SITE_AGENT_PILOT_DIR=DEST) then runs it.
set -euo pipefail
dest=${1:?usage: get-panda-pilot.sh DEST [VERSION]}
python=${PYTHON:-python3}
version=${2:-$("$python" -c 'import importlib.metadata as m; print(m.version("panda-pilot"))')}
[[ "$version" =~ ^[0-9][0-9A-Za-z.]{0,31}$ ]] || { echo "get-panda-pilot: bad version '$version'" >&2; exit 2; }
if [ -f "$dest/pilot.py" ] && [ "$(tr -d '[:space:]' < "$dest/PILOTVERSION" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --no-deps --no-binary :all: "panda-pilot==$version" -d "$tmp"
tar -xzf "$tmp/panda-pilot-$version.tar.gz" -C "$tmp"
[ -f "$tmp/panda-pilot-$version/pilot.py" ] || { echo "get-panda-pilot: no pilot.py in the sdist" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/panda-pilot-$version" "$dest"
echo "PanDA pilot $version in $dest"
