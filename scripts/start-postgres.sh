#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and development (Debian's server binaries).
#
#   scripts/start-postgres.sh start DIR [PORT]   start (or reuse) a server whose files live in DIR
#   scripts/start-postgres.sh restart DIR        restart it (pg_ctl restart -m fast)
#   scripts/start-postgres.sh stop DIR           stop it and delete DIR
#
# `start` prints shell assignments on stdout, e.g.
#   CUSTODY_TEST_PG_URL=postgres://custody:PASSWORD@127.0.0.1:PORT/custody
# so `eval "$(scripts/start-postgres.sh start /tmp/custody-pg)"` exports nothing by itself;
# use `export $(scripts/start-postgres.sh start /tmp/custody-pg)`. Tests given
# CUSTODY_TEST_PG_URL create their own database in that server instead of starting one.
#
# The server listens on 127.0.0.1 only, with scram-sha-256 password auth (a random password,
# kept in DIR/env, mode 600), and the durability settings left at their defaults (fsync,
# synchronous_commit and full_page_writes on). PostgreSQL refuses to run as root, so as root the
# server runs as the `postgres` system user (or `nobody`) and DIR is chowned to it.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|restart|stop DIR [PORT]" >&2
  exit 2
fi
dir="$(realpath -m "$dir")"
data="$dir/data"

bin=""
for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
  if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then bin="/usr/lib/postgresql/$v/bin"; break; fi
done
if [ -z "$bin" ]; then
  echo "no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql" >&2
  exit 1
fi

runas=()
owner=""
if [ "$(id -u)" = 0 ]; then
  for u in postgres nobody; do
    if id -u "$u" >/dev/null 2>&1; then owner="$u"; break; fi
  done
  [ -n "$owner" ] || { echo "running as root and no postgres/nobody user to run PostgreSQL as" >&2; exit 1; }
  runas=(runuser -u "$owner" --)
fi
pgctl() { "${runas[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" "$@"; }

running() { [ -f "$data/postmaster.pid" ] && pgctl status >/dev/null 2>&1; }

case "$cmd" in
  stop)
    if running; then pgctl -m fast -w -t 30 stop >/dev/null || pgctl -m immediate -w stop >/dev/null || true; fi
    rm -rf "$dir"
    exit 0
    ;;
  restart)
    running || { echo "no server running in $dir" >&2; exit 1; }
    pgctl -m fast -w -t 60 restart >/dev/null
    exit 0
    ;;
  start) ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac

if running && [ -f "$dir/env" ]; then
  echo "PostgreSQL in $dir is already running; reusing it" >&2
  cat "$dir/env"
  exit 0
fi

port="${3:-}"
if [ -z "$port" ]; then
  port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
fi
mkdir -p "$dir"
chmod 700 "$dir"
password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
umask 077
printf '%s\n' "$password" > "$dir/pwfile"
if [ ! -f "$data/PG_VERSION" ]; then
  [ -n "$owner" ] && chown -R "$owner" "$dir"
  "${runas[@]}" "$bin/initdb" -D "$data" -U custody --pwfile="$dir/pwfile" --auth=scram-sha-256 \
    -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
else
  echo "reusing the data directory $data (its password is unchanged)" >&2
  password="$(sed -n 's|^CUSTODY_TEST_PG_URL=postgres://custody:\([^@]*\)@.*|\1|p' "$dir/env")"
fi
rm -f "$dir/pwfile"
cat >>"$data/postgresql.conf" <<EOF

# scripts/start-postgres.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 100
EOF
[ -n "$owner" ] && chown -R "$owner" "$dir"
pgctl -w -t 60 start >/dev/null || { tail -n 30 "$dir/postgres.log" >&2; exit 1; }
PGPASSWORD="$password" "${runas[@]}" "$bin/createdb" -h "$dir" -p "$port" -U custody custody 2>/dev/null || true
{
  echo "CUSTODY_TEST_PG_URL=postgres://custody:$password@127.0.0.1:$port/custody"
  echo "CUSTODY_TEST_PG_DIR=$dir"
} >"$dir/env"
[ -n "$owner" ] && chown "$owner" "$dir/env"
cat "$dir/env"
