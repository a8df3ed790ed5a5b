#!/usr/bin/env bash
# A real PanDA server on loopback for Harvester and pilot developers (and CI):
# PostgreSQL 15 (pg_cron, pg_partman) with the PanDA schema, panda-server-source 0.8.1 under
# Apache httpd + mod_ssl + mod_wsgi, a test CA with server and user certificates, and test queues.
#
#   scripts/panda-devstack.sh up       install what is missing, start, print how to use it
#   scripts/panda-devstack.sh status   what runs (exit 0: all up, 3: not all up)
#   scripts/panda-devstack.sh down     stop exactly the processes `up` started
#   scripts/panda-devstack.sh env      the variables clients need, as shell assignments
#   scripts/panda-devstack.sh psql [ARGS]  psql on panda_db as the database superuser
#   scripts/panda-devstack.sh pilot-config PILOT3_DIR
#                                      pilot3's default.cfg pointed at this stack, for
#                                      HARVESTER_PILOT_CONFIG (`up` writes it for .cache/pilot3)
#
# Everything lives in one state directory, $PANDA_DEVSTACK_DIR (default
# ~/.cache/site-agent/panda-devstack; /var/lib/site-agent/panda-devstack for root, because the
# database and web server then run as the unprivileged `postgres` and `www-data` users, which
# cannot enter /root). `down` then `rm -rf` of that directory removes all of it; the server
# venv in it is reused by the next `up`.
set -euo pipefail
# as root, the venv, configuration and logs must be readable by www-data and postgres
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $EUID -eq 0 ]]; then
  STATE=${PANDA_DEVSTACK_DIR:-/var/lib/site-agent/panda-devstack}
  DB_USER=postgres WEB_USER=www-data
else
  STATE=${PANDA_DEVSTACK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/site-agent/panda-devstack}
  DB_USER=$(id -un) WEB_USER=$(id -un)
fi
HTTP_PORT=${PANDA_DEVSTACK_HTTP_PORT:-25080}
HTTPS_PORT=${PANDA_DEVSTACK_HTTPS_PORT:-25443}
PG_PORT=${PANDA_DEVSTACK_PG_PORT:-25432}
QUEUE=${PANDA_DEVSTACK_QUEUE:-SITEAGENT_DEVSTACK}
OFFLINE_QUEUE=${QUEUE}_OFFLINE
USER_DN="/C=XX/O=site-agent/OU=devstack/CN=devstack user"
PG_BIN=/usr/lib/postgresql/15/bin
APT_PACKAGES=(postgresql-15 postgresql-15-cron postgresql-15-partman apache2
  libapache2-mod-wsgi-py3 python3-venv openssl curl)
# the server venv: panda-server-source 0.8.1 (1.0.x forbids the getJob that pilot3 calls), the
# modules its WSGI app imports (it declares none), panda-client 2.2.0 to submit jobs; all pinned
REQUIREMENTS=$REPO/scripts/panda-devstack-requirements.txt

say() { printf 'panda-devstack: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }
as_db() { if [[ $EUID -eq 0 ]]; then runuser -u "$DB_USER" -- "$@"; else "$@"; fi; }
own() { [[ $EUID -ne 0 ]] || chown -R "$1" "${@:2}"; }

usage() {
  sed -n '2,/^set -e/p' "$0" | sed -e '/^set -e/d' -e 's/^# \{0,1\}//'
  exit 2
}

# ---------------------------------------------------------------- install
install_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  [[ $EUID -eq 0 ]] || die "missing Debian packages: run: sudo apt-get install ${missing[*]}"
  say "apt-get install ${missing[*]}"
  # the packages' own services (apache2 on :80, the main PostgreSQL cluster) are not ours to
  # start: a policy-rc.d that denies starts, only while installing and only if none exists
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  local rc=0
  { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; } ||
    rc=$?
  [[ -z $own_policy ]] || rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${missing[*]} failed"
}

server_venv() {
  # mod_wsgi is built against Debian's Python: the venv must be made from that same Python
  local py=/usr/bin/python3 want
  want="$($py -c 'import sys; print("%d.%d" % sys.version_info[:2])') $(sha256sum <"$REQUIREMENTS")"
  if [[ -f $STATE/venv/.devstack && $(cat "$STATE/venv/.devstack") == "$want" ]]; then
    return 0
  fi
  say "server venv in $STATE/venv (panda-server-source 0.8.1; pip install -r $(basename "$REQUIREMENTS"))"
  rm -rf "$STATE/venv"
  $py -m venv "$STATE/venv"
  "$STATE/venv/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" \
    2> >(grep -v -e "^WARNING: Location" -e DEPRECATION >&2) || die "pip install into $STATE/venv failed"
  printf '%s\n' "$want" >"$STATE/venv/.devstack"
}

site_packages() { echo "$STATE"/venv/lib/python3*/site-packages; }

# ---------------------------------------------------------------- certificates
make_certs() {
  local pki=$STATE/pki
  [[ -f $pki/.done ]] && return 0
  say "test CA, server and user certificates in $pki"
  rm -rf "$pki"
  mkdir -p "$pki/certificates"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/C=XX/O=site-agent/CN=site-agent devstack CA" \
      -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/C=XX/O=site-agent/CN=localhost" \
      -keyout hostkey.pem -out host.csr 2>/dev/null
    openssl x509 -req -in host.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -out hostcert.pem \
      -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "$USER_DN" -keyout userkey.pem -out user.csr 2>/dev/null
    openssl x509 -req -in user.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -out usercert.pem \
      -extfile <(printf 'extendedKeyUsage=clientAuth\n') 2>/dev/null
    # what X509_USER_PROXY points at: certificate then key in one owner-only file
    cat usercert.pem userkey.pem >userproxy.pem
    chmod 600 ./*.key ./*key.pem userproxy.pem
    rm -f ./*.csr ca.srl
    # X509_CERT_DIR layout: the CA under its subject hash
    cp ca.pem certificates/
    ln -s ca.pem "certificates/$(openssl x509 -hash -noout -in ca.pem).0"
  )
  touch "$pki/.done"
}

# ---------------------------------------------------------------- database
schema_dir() {
  # the PanDA schema is in no package: a local copy (CI: ../shared/panda-database next to the
  # clone), else the upstream repository where this machine has internet
  local d
  # (../../shared: from a git worktree one level below the clone's parent)
  for d in "${PANDA_DEVSTACK_SCHEMA:-}" "$REPO/../shared/panda-database" "$REPO/../../shared/panda-database"; do
    [[ -n $d && -f $d/panda-database-postgres-schema.tgz ]] || continue
    mkdir -p "$STATE/schema"
    tar xzf "$d/panda-database-postgres-schema.tgz" -C "$STATE/schema"
    echo "$STATE/schema/schema/postgres"
    return 0
  done
  if [[ ! -d $STATE/schema/upstream/schema/postgres ]]; then
    say "no local PanDA schema copy: cloning https://github.com/PanDAWMS/panda-database"
    git clone -q --depth 1 https://github.com/PanDAWMS/panda-database "$STATE/schema/upstream" ||
      die "no PanDA schema: set PANDA_DEVSTACK_SCHEMA to a directory holding panda-database-postgres-schema.tgz"
    # Debian 12's pg_partman 4.7 rejects p_type => 'range'
    sed -i "s/p_type => 'range'/p_type => 'native'/" "$STATE/schema/upstream/schema/postgres/sqls/pg_PARTITION.sql"
  fi
  echo "$STATE/schema/upstream/schema/postgres"
}

pg_running() { [[ -f $STATE/pgdata/postmaster.pid ]] && as_db "$PG_BIN/pg_ctl" -D "$STATE/pgdata" status >/dev/null 2>&1; }
psql_su() { as_db "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$STATE/run" -p "$PG_PORT" -U postgres "$@"; }

start_database() {
  mkdir -p "$STATE/run" "$STATE/log"
  own "$DB_USER" "$STATE/run"
  if [[ ! -f $STATE/pgdata/PG_VERSION ]]; then
    say "PostgreSQL cluster in $STATE/pgdata"
    rm -rf "$STATE/pgdata"
    mkdir -p "$STATE/pgdata"
    own "$DB_USER" "$STATE/pgdata"
    chmod 700 "$STATE/pgdata"
    as_db "$PG_BIN/initdb" -D "$STATE/pgdata" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$STATE/pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$STATE/run'
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
# pg_cron's jobs (the job statistics behind the server's statistics API, every minute) connect
# through the socket in the state directory, where local connections need no password
cron.host = '$STATE/run'
fsync = off
EOF
  fi
  if ! pg_running; then
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    touch "$STATE/log/postgresql.log" && own "$DB_USER" "$STATE/log/postgresql.log"
    as_db "$PG_BIN/pg_ctl" -D "$STATE/pgdata" -l "$STATE/log/postgresql.log" -w -t 60 start >/dev/null ||
      die "PostgreSQL did not start: see $STATE/log/postgresql.log"
  fi
}

create_schema() {
  [[ -f $STATE/etc/.db-done ]] && return 0
  local dir password
  dir=$(schema_dir)
  password=$(db_password)
  say "PanDA schema $(cat "$dir/version") into panda_db"
  : >"$STATE/log/schema.log"
  sed "s/\${PANDA_DB_PASSWORD}/$password/g" "$dir/sqls/init_step.sql" >"$STATE/run/init_step.sql"
  chmod 644 "$STATE/run/init_step.sql"
  psql_su -d postgres -f "$STATE/run/init_step.sql" >/dev/null
  rm -f "$STATE/run/init_step.sql"
  local comp sub f
  for comp in PANDA PANDAMETA PANDAARCH PANDABIGMON DEFT PARTITION; do
    for sub in "" _TABLE _VIEW _TYPE _SEQUENCE _FUNCTION _TRIGGER _SCHEDULER_JOBS _PROCEDURE; do
      f=$dir/sqls/pg_${comp}${sub}.sql
      [[ -f $f ]] || continue
      # the files set ON_ERROR_STOP themselves. Known upstream 0.1.6 defect, tolerated: the
      # last view of pg_PANDA_SCHEDULER_JOBS.sql reads doma_panda.worker_node_queue, which only
      # patch 0.0.31 creates (a GPU summary no path here uses)
      if ! as_db "$PG_BIN/psql" -X -q -h "$STATE/run" -p "$PG_PORT" -U postgres -d panda_db -f "$f" \
        >"$STATE/log/schema.last" 2>&1; then
        grep -q 'relation "doma_panda.worker_node_queue" does not exist' "$STATE/log/schema.last" ||
          { cat "$STATE/log/schema.last" >>"$STATE/log/schema.log"; die "schema: $f failed: see $STATE/log/schema.log"; }
      fi
      cat "$STATE/log/schema.last" >>"$STATE/log/schema.log"
    done
  done
  IFS=. read -r major minor patch <"$dir/version" || true  # no final newline
  psql_su -d panda_db -c "INSERT INTO doma_panda.pandadb_version (component, major, minor, patch) VALUES ('PanDA', '$major', '$minor', '$patch')" >/dev/null
  psql_su -d panda_db -f "$dir/sqls/post_step_panda.sql" >>"$STATE/log/schema.log" 2>&1
  psql_su -d postgres -f "$dir/sqls/post_step_cron.sql" >>"$STATE/log/schema.log" 2>&1
  # upstream sets nodename '' (libpq's default socket directory): ours is in the state directory
  psql_su -d postgres -c "UPDATE cron.job SET nodename = '$STATE/run' WHERE nodename = ''" >/dev/null
  seed_database
  touch "$STATE/etc/.db-done"
}

db_password() {
  local f=$STATE/etc/dbpassword
  if [[ ! -s $f ]]; then
    mkdir -p "$STATE/etc"
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$f")
  fi
  cat "$f"
}

queue_json() { # name state -> the queue's queuedata (PanDA schedconfig and CRIC keys)
  cat <<EOF
{"nickname": "$1", "panda_resource": "$1", "siteid": "$1", "atlas_site": "SITEAGENT_DEVSTACK",
 "state": "$2", "status": "$(if [[ $2 == ACTIVE ]]; then echo online; else echo offline; fi)",
 "vo_name": "wlcg", "type": "production", "resource_type": "GRID", "cloud": "WORLD", "country": "XX",
 "maxtime": 86400, "maxrss": 0, "corecount": 1, "capability": "ucore", "catchall": "",
 "jobseed": "std", "pilot_manager": "Harvester", "harvester": "devstack", "params": {},
 "acopytools": {}, "astorages": {}, "copytools": {}, "ddm": "", "container_type": "",
 "container_options": "", "direct_access_lan": false, "direct_access_wan": false,
 "is_cvmfs": false, "use_pcache": false, "maxinputsize": 0, "maxwdir": 10000}
EOF
}

seed_database() {
  # the schema seeds only 'Undefined': pilots asking for SCORE/MCORE would never get a job
  psql_su -d panda_db >/dev/null <<EOF
INSERT INTO doma_panda.resource_types (resource_name, mincore, maxcore, minrampercore, maxrampercore)
  VALUES ('SCORE', 1, 1, NULL, NULL), ('MCORE', 2, NULL, NULL, NULL),
         ('SCORE_HIMEM', 1, 1, 2001, NULL), ('MCORE_HIMEM', 2, NULL, 2001, NULL)
  ON CONFLICT DO NOTHING;
INSERT INTO doma_panda.schedconfig_json (panda_queue, data, last_update)
  VALUES ('$QUEUE', '$(queue_json "$QUEUE" ACTIVE | tr -d '\n')', now()),
         ('$OFFLINE_QUEUE', '$(queue_json "$OFFLINE_QUEUE" OFFLINE | tr -d '\n')', now());
EOF
}

# ---------------------------------------------------------------- web server
write_static() {
  # what Apache serves besides the WSGI app: the queues' JSON as pilot3 reads it (PanDA cache
  # and CRIC shapes), and /trf/ job scripts (reached through Apache as the jobs' http_proxy)
  local www=$STATE/www q s
  mkdir -p "$www/schedconfig" "$www/cric" "$www/trf/user" "$www/htdocs"
  for q in "$QUEUE:ACTIVE" "$OFFLINE_QUEUE:OFFLINE"; do
    s=${q#*:} q=${q%%:*}
    queue_json "$q" "$s" >"$www/schedconfig/$q.all.json"
    { printf '{"%s": ' "$q"; queue_json "$q" "$s"; printf '}\n'; } >"$www/cric/$q.json"
  done
  echo '{}' >"$www/cric/ddmendpoints.json"
  cat >"$www/trf/user/devstack-hello.sh" <<'EOF'
#!/bin/sh
# devstack test payload: writes its arguments; `fail N` exits with N
if [ "$1" = fail ]; then echo "failing on purpose with $2" >&2; exit "$2"; fi
echo "hello $*" | tee hello.txt
EOF
}

write_server_config() {
  local etc=$STATE/etc/panda sp
  sp=$(site_packages)
  mkdir -p "$etc" "$STATE/log/panda/pandacache" "$STATE/run/wsgi"
  cat >"$etc/panda_server.cfg" <<EOF
# written by scripts/panda-devstack.sh from the panda-server 0.8.1 template
[server]
logdir = $STATE/log/panda
loggername = devstack
cache_dir = $STATE/log/panda/pandacache
native_python = $STATE/venv/bin
native_python32 = $STATE/venv/bin
pandaCommon_dir = $sp/pandacommon
pandaPython_dir = $sp/pandaserver
home_dir_cwd = $STATE/run
backend = postgres
dbhost = 127.0.0.1
dbport = $PG_PORT
dbuser = panda
dbpasswd = $(db_password)
dbname = panda_db
nDBConnection = 1
usedbtimeout = True
dbtimeout = 300
dbbridgeverbose = False
dump_sql = False
cursor_dump = False
schemaPANDA = DOMA_PANDA
schemaMETA = DOMA_PANDAMETA
schemaPANDAARCH = DOMA_PANDAARCH
schemaJEDI = DOMA_PANDA
schemaDEFT = DOMA_DEFT
pserverhost = 127.0.0.1
pserverhosthttp = 127.0.0.1
pserverport = $HTTPS_PORT
pserverporthttp = $HTTP_PORT
pserverportcache = $HTTP_PORT
pserveralias = 127.0.0.1
certdir = $STATE/pki
keyDir = $STATE/pki
entryVerbose = False
record_statuschange = True
useJEDI = False
# the template's dataservice.AdderDummyPlugin no longer exists: without a working Adder plugin
# finished jobs stay 'holding'
adder_plugins = local|wlcg:pandaserver.dataservice.adder_dummy_plugin:AdderDummyPlugin
setupper_plugins = local:dataservice.SetupperDummyPlugin:SetupperDummyPlugin
# x509 through mod_ssl, no OIDC tokens
token_authType = None
production_dns = $USER_DN
pilot_owners = $USER_DN
[daemon]
enable = False
EOF
  # panda-common's template, [logger] only, logging here; its HTTP log host is loopback
  sed -n '/^\[logger\]/,/^\[kafka\]/p' "$STATE/venv/etc/panda/panda_common.cfg.rpmnew" |
    sed -e '/^\[kafka\]/d' -e "s|^logdir=.*|logdir=$STATE/log/panda|" \
      -e 's|^loghost\(_new\)\{0,1\}=.*|loghost\1=127.0.0.1|' >"$etc/panda_common.cfg"
  chmod 640 "$etc/panda_server.cfg"
  own "$WEB_USER" "$STATE/log/panda" "$STATE/run/wsgi"
  [[ $EUID -ne 0 ]] || chgrp "$WEB_USER" "$etc/panda_server.cfg"
}

write_httpd_config() {
  local sp m mods=""
  sp=$(site_packages)
  for m in mpm_event authz_core authz_host alias mime env ssl socache_shmcb wsgi; do
    mods+="LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so"$'\n'
  done
  cat >"$STATE/etc/httpd.conf" <<EOF
# written by scripts/panda-devstack.sh (after panda-server's panda_server-httpd.conf template)
$mods
ServerRoot "$STATE"
ServerName 127.0.0.1
$( [[ $EUID -eq 0 ]] && printf 'User %s\nGroup %s\n' "$WEB_USER" "$WEB_USER")
PidFile "$STATE/run/httpd.pid"
DefaultRuntimeDir "$STATE/run"
Mutex file:$STATE/run default
ErrorLog "$STATE/log/httpd_error.log"
LogLevel warn
LogFormat "%t %h \"%r\" %>s %b" common
CustomLog "$STATE/log/httpd_access.log" common
TypesConfig /etc/mime.types
TimeOut 600
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
Listen 127.0.0.1:$HTTP_PORT
Listen 127.0.0.1:$HTTPS_PORT
DocumentRoot "$STATE/www/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "$STATE/www">
    Require all granted
</Directory>
Alias /trf/ "$STATE/www/trf/"
Alias /cache/schedconfig/ "$STATE/www/schedconfig/"
Alias /cric/ "$STATE/www/cric/"
WSGIDaemonProcess pandasrv_daemon processes=1 threads=8 python-home=$STATE/venv home=$STATE/run
WSGIProcessGroup pandasrv_daemon
WSGIApplicationGroup %{GLOBAL}
WSGIScriptAliasMatch ^(/server/panda/.+)|(/api/.+)\$ $sp/pandaserver/server/panda.py
WSGISocketPrefix $STATE/run/wsgi/wsgi
WSGIPassAuthorization On
<Directory "$sp/pandaserver/server">
    Require all granted
</Directory>
<VirtualHost 127.0.0.1:$HTTPS_PORT>
    SSLEngine on
    SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1
    SSLCertificateFile "$STATE/pki/hostcert.pem"
    SSLCertificateKeyFile "$STATE/pki/hostkey.pem"
    SSLCACertificatePath "$STATE/pki/certificates"
    SSLVerifyClient optional
    SSLVerifyDepth 10
    SSLOptions +StdEnvVars +ExportCertData +LegacyDNStringFormat
</VirtualHost>
EOF
}

httpd_running() { [[ -f $STATE/run/httpd.pid ]] && kill -0 "$(cat "$STATE/run/httpd.pid")" 2>/dev/null; }

start_httpd() {
  if httpd_running; then
    return 0
  fi
  say "starting Apache httpd on 127.0.0.1:$HTTP_PORT (http) and :$HTTPS_PORT (https)"
  # shellcheck disable=SC2046
  env $(server_env) /usr/sbin/apache2 -f "$STATE/etc/httpd.conf" -k start ||
    die "Apache did not start: see $STATE/log/httpd_error.log"
  local i
  for i in $(seq 1 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/server/panda/isAlive"; then
      return 0
    fi
    sleep 0.2
  done
  die "the PanDA server does not answer http://127.0.0.1:$HTTP_PORT/server/panda/isAlive: see $STATE/log/httpd_error.log and $STATE/log/panda/"
}

pilot_config() { # PILOT_DIR -> $STATE/pilot/pilot.cfg: pilot3's default.cfg pointed here
  local cfg=$1/pilot/util/default.cfg out=$STATE/pilot/pilot.cfg key url
  [[ -f $cfg ]] || die "pilot-config: no pilot/util/default.cfg in $1"
  mkdir -p "$STATE/pilot"
  cp "$cfg" "$out.tmp"
  for key in "queuedata_url=http://127.0.0.1:$HTTP_PORT/cache/schedconfig/{pandaqueue}.all.json" \
    "queues_url=http://127.0.0.1:$HTTP_PORT/cric/{pandaqueue}.json" \
    "storages_url=http://127.0.0.1:$HTTP_PORT/cric/ddmendpoints.json" \
    "pandaserver=https://127.0.0.1:$HTTPS_PORT" "iddsserver=https://127.0.0.1:$HTTPS_PORT"; do
    url=${key#*=} key=${key%%=*}
    grep -q "^$key:" "$out.tmp" || die "pilot-config: no '$key:' in $cfg"
    sed -i "s|^$key:.*|$key: $url|" "$out.tmp"
  done
  mv "$out.tmp" "$out"
  echo "$out"
}

server_env() { # what the server's Python needs in its environment (Apache and the Adder)
  # PANDA_HOME: where the server finds etc/panda/*.cfg. PANDA_BEHIND_REAL_LB and
  # PANDACACHE_URL: panda-client (imported by the server) resolves pandacache.cern.ch at import
  echo PANDA_HOME="$STATE" PANDA_BEHIND_REAL_LB=1 PANDACACHE_URL="https://127.0.0.1:$HTTPS_PORT/server/panda" \
    PANDA_URL="http://127.0.0.1:$HTTP_PORT/server/panda" PANDA_URL_SSL="https://127.0.0.1:$HTTPS_PORT/server/panda"
}

adder_running() { [[ -f $STATE/run/adder.pid ]] && kill -0 "$(cat "$STATE/run/adder.pid")" 2>/dev/null; }

start_adder() {
  # the server's Adder turns pilots' final reports (jobs 'holding') into finished/failed jobs;
  # panda_daemon is not run, this loop runs the same AdderGen (see panda_devstack_adder.py)
  adder_running && return 0
  say "starting the Adder loop"
  mkdir -p "$STATE/bin"
  cp "$REPO/scripts/panda_devstack_adder.py" "$STATE/bin/"
  touch "$STATE/log/adder.log" && own "$WEB_USER" "$STATE/log/adder.log"
  local run=()
  # setpriv execs (no runuser parent): the pid file names the Adder itself
  [[ $EUID -ne 0 ]] || run=(setpriv --reuid="$WEB_USER" --regid="$WEB_USER" --init-groups)
  # shellcheck disable=SC2046
  (cd "$STATE/run" && exec setsid "${run[@]}" env $(server_env) "$STATE/venv/bin/python" \
    "$STATE/bin/panda_devstack_adder.py" >>"$STATE/log/adder.log" 2>&1 </dev/null) &
  echo $! >"$STATE/run/adder.pid"
}

# ---------------------------------------------------------------- commands
write_env() {
  # KEY='value' lines: `. devstack.env` in a shell, shlex in Python
  local kv
  for kv in "PANDA_DEVSTACK_DIR=$STATE" "PANDA_DEVSTACK_QUEUE=$QUEUE" \
    "PANDA_DEVSTACK_OFFLINE_QUEUE=$OFFLINE_QUEUE" "PANDA_DEVSTACK_PYTHON=$STATE/venv/bin/python" \
    "PANDA_DEVSTACK_USER_DN=$USER_DN" "PANDA_URL=http://127.0.0.1:$HTTP_PORT/server/panda" \
    "PANDA_URL_SSL=https://127.0.0.1:$HTTPS_PORT/server/panda" \
    "PANDACACHE_URL=https://127.0.0.1:$HTTPS_PORT/server/panda" "PANDA_BEHIND_REAL_LB=1" \
    "X509_USER_PROXY=$STATE/pki/userproxy.pem" "X509_CERT_DIR=$STATE/pki/certificates" \
    "PANDA_DEVSTACK_CA=$STATE/pki/ca.pem" "PANDA_DEVSTACK_HTTP_PROXY=http://127.0.0.1:$HTTP_PORT" \
    "PANDA_DEVSTACK_TRF=http://pandaserver-doma.cern.ch:25080/trf/user/devstack-hello.sh" \
    "HARVESTER_PILOT_CONFIG=$STATE/pilot/pilot.cfg"; do
    printf "%s='%s'\n" "${kv%%=*}" "${kv#*=}"
  done >"$STATE/devstack.env"
}

cmd_up() {
  local t0=$SECONDS
  install_packages
  mkdir -p "$STATE/etc" "$STATE/log" "$STATE/run"
  chmod 755 "$STATE"
  server_venv
  make_certs
  start_database
  create_schema
  write_static
  write_server_config
  write_httpd_config
  start_httpd
  start_adder
  local pilot_dir=${PANDA_DEVSTACK_PILOT_DIR:-$REPO/.cache/pilot3}
  [[ ! -f $pilot_dir/pilot.py ]] || pilot_config "$pilot_dir" >/dev/null
  write_env
  say "up in $((SECONDS - t0))s"
  cat <<EOF
PanDA dev stack (state: $STATE)
  server      http://127.0.0.1:$HTTP_PORT/server/panda  https://127.0.0.1:$HTTPS_PORT/server/panda
  database    postgresql://panda@127.0.0.1:$PG_PORT/panda_db (password in $STATE/etc/dbpassword)
  queue       $QUEUE (ACTIVE), $OFFLINE_QUEUE (OFFLINE); resource types SCORE, MCORE
  queuedata   http://127.0.0.1:$HTTP_PORT/cache/schedconfig/{pandaqueue}.all.json, CRIC: /cric/{pandaqueue}.json
  CA          $STATE/pki/ca.pem (X509_CERT_DIR=$STATE/pki/certificates)
  user        $USER_DN: X509_USER_PROXY=$STATE/pki/userproxy.pem
  pilot3      HARVESTER_PILOT_CONFIG=$STATE/pilot/pilot.cfg ($0 pilot-config PILOT3_DIR); -q $QUEUE --url https://127.0.0.1 -p $HTTPS_PORT
  job script  http://pandaserver-doma.cern.ch:25080/trf/user/devstack-hello.sh (http_proxy=http://127.0.0.1:$HTTP_PORT)
  clients     set -a; . $STATE/devstack.env; set +a   (panda-client: $STATE/venv/bin/python)
  logs        $STATE/log/
EOF
}

cmd_down() {
  local i
  local pid
  if httpd_running; then
    pid=$(cat "$STATE/run/httpd.pid")
    say "stopping Apache httpd (pid $pid)"
    /usr/sbin/apache2 -f "$STATE/etc/httpd.conf" -k stop 2>/dev/null || kill "$pid"
    # the parent exits after its children (the WSGI daemon gets a few seconds to finish)
    for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if adder_running; then
    pid=$(cat "$STATE/run/adder.pid")
    say "stopping the Adder loop (pid $pid)"
    # its own process group (setsid): the server's helper processes it forked go with it
    kill -TERM -- "-$pid" 2>/dev/null || kill "$pid"
    for i in $(seq 1 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/run/adder.pid"
  if pg_running; then
    say "stopping PostgreSQL ($STATE/pgdata)"
    as_db "$PG_BIN/pg_ctl" -D "$STATE/pgdata" -m fast -w stop >/dev/null
  fi
  say "down (state kept in $STATE; remove it to start from scratch)"
}

cmd_status() {
  local ok=0
  if pg_running; then echo "database  running  127.0.0.1:$PG_PORT ($STATE/pgdata)"; else echo "database  stopped"; ok=3; fi
  if httpd_running; then
    echo "httpd     running  pid $(cat "$STATE/run/httpd.pid")"
    if curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/server/panda/isAlive"; then
      echo "server    alive    http://127.0.0.1:$HTTP_PORT/server/panda https://127.0.0.1:$HTTPS_PORT/server/panda"
    else
      echo "server    not answering (see $STATE/log/)"; ok=3
    fi
  else
    echo "httpd     stopped"; ok=3
  fi
  if adder_running; then echo "adder     running  pid $(cat "$STATE/run/adder.pid")"; else echo "adder     stopped"; ok=3; fi
  [[ -f $STATE/devstack.env ]] && echo "env       $STATE/devstack.env"
  return $ok
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  psql) shift; psql_su -d panda_db "$@" ;;
  pilot-config) [[ -n ${2:-} ]] || die "pilot-config: give pilot3's directory"; pilot_config "$2" ;;
  env) [[ -f $STATE/devstack.env ]] || die "not set up: run $0 up"; sed 's/^/export /' "$STATE/devstack.env" ;;
  "" | -h | --help) usage ;;
  *) say "error: unknown command '$1' (up, down, status, env, psql, pilot-config)"; exit 2 ;;
esac
