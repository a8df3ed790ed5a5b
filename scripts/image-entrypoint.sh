#!/bin/sh
# Entrypoint of the site-agent image (Containerfile).
#   site-agent-entrypoint [SITE-AGENT ARGS...]   -> site-agent ARGS (the default)
#   site-agent-entrypoint PROGRAM [ARGS...]      -> PROGRAM, when it is a program of the image's
#     venv (process_worker_pool.py: the worker pools the endpoint starts in this image;
#     globus-compute-endpoint) or an absolute path
# Before site-agent or globus-compute-endpoint runs, HOME and the endpoint directory must be
# writable: apptainer runs the image as the calling user and podman with --user may leave HOME at
# the image user's home; say so in one line instead of failing minutes later.
set -eu
venv_bin="${SITE_AGENT_HOME:-/opt/site-agent}/venv/bin"

# the nearest existing directory of $1 (itself or a parent) is writable
writable() {
  d=$1
  while [ ! -e "$d" ]; do d=$(dirname "$d"); done
  [ -d "$d" ] && [ -w "$d" ]
}

fail() {
  echo "site-agent: $1 is not writable by uid $(id -u); give the container a writable home:" \
    "apptainer run --home DIR site-agent.sif ..., podman run -e HOME=DIR -v DIR:DIR ..." >&2
  exit 2
}

check_writable() {
  [ -n "${HOME:-}" ] && [ "$HOME" != / ] || fail "HOME (${HOME:-unset})"
  writable "$HOME" || fail "HOME=$HOME"
  gc_dir=${GLOBUS_COMPUTE_USER_DIR:-$HOME/.globus_compute}
  writable "$gc_dir" || fail "the Globus Compute directory $gc_dir"
  prev=
  for arg in "$@"; do
    case $prev in --endpoint-dir) writable "$arg" || fail "--endpoint-dir $arg" ;; esac
    case $arg in --endpoint-dir=*) writable "${arg#*=}" || fail "--endpoint-dir ${arg#*=}" ;; esac
    prev=$arg
  done
}

case ${1:-} in
  /*) exec "$@" ;;
  site-agent) shift ;;
  globus-compute-endpoint)
    shift
    # python-exec starts the worker pools, which write only to the endpoint's run directory
    [ "${1:-}" = python-exec ] || check_writable "$@"
    exec "$venv_bin/globus-compute-endpoint" "$@"
    ;;
  -* | "") ;;
  *)
    if [ -f "$venv_bin/$1" ] && [ -x "$venv_bin/$1" ]; then
      prog=$1
      shift
      exec "$venv_bin/$prog" "$@"
    fi
    ;;
esac
case ${1:-} in
  "" | -h | --help | --version) ;;
  *) check_writable "$@" ;;
esac
exec "$venv_bin/site-agent" "$@"
