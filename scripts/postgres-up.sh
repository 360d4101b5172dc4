#!/bin/sh
# Make a local PostgreSQL answer for jupyter-berth's tests; print its URL as the last line.
#
#   URL=$(scripts/postgres-up.sh | tail -n 1)
#
# Idempotent and fast when the server is already up (one psql round trip). Otherwise, as
# root on Debian/Ubuntu: installs the `postgresql` package if missing (apt-get update only
# when apt knows no candidate), creates/starts the newest installed cluster, and creates
# the login role `berth` (password `berth`, CREATEDB) and its database `berth_test`,
# reachable with password authentication on 127.0.0.1.
# Environment: BERTH_PG_USER, BERTH_PG_PASSWORD, BERTH_PG_DB override the names.
set -eu

PGUSER_NAME=${BERTH_PG_USER:-berth}
PGPASS=${BERTH_PG_PASSWORD:-berth}
PGDB=${BERTH_PG_DB:-berth_test}

say() { echo "postgres-up: $*" >&2; }
die() { say "$*"; exit 1; }

url() { echo "postgresql+psycopg://$PGUSER_NAME:$PGPASS@127.0.0.1:$1/$PGDB"; }

answers() {  # port
    command -v psql >/dev/null 2>&1 || return 1
    PGPASSWORD=$PGPASS PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$1" -U "$PGUSER_NAME" -d "$PGDB" -tAqc 'SELECT 1' >/dev/null 2>&1
}

# Fast path: the default port already serves our database.
if answers "${BERTH_PG_PORT:-5432}"; then
    url "${BERTH_PG_PORT:-5432}"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "PostgreSQL does not answer on 127.0.0.1 as $PGUSER_NAME/$PGDB and only root can install or start it; run this script as root or set BERTH_TEST_POSTGRES_URL"

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and this is not a Debian-like system; install PostgreSQL or set BERTH_TEST_POSTGRES_URL"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy postgresql 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    fi
    say "installing postgresql"
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql >&2
fi

VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
[ -n "$VERSION" ] || die "no PostgreSQL server under /usr/lib/postgresql"
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    say "creating cluster $VERSION/main"
    pg_createcluster "$VERSION" main >&2
fi
PORT=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')
STATUS=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}')
if [ "$STATUS" != "online" ]; then
    say "starting cluster $VERSION/main on port $PORT"
    pg_ctlcluster "$VERSION" main start >&2 || pg_lsclusters -h | grep -q "^$VERSION *main .*online" \
        || die "could not start PostgreSQL $VERSION/main; see /var/log/postgresql/postgresql-$VERSION-main.log"
fi

# Wait until it accepts connections (a fresh start takes a moment).
i=0
until runuser -u postgres -- pg_isready -q -p "$PORT"; do
    i=$((i + 1))
    [ $i -lt 60 ] || die "PostgreSQL $VERSION/main did not become ready in 30 s"
    sleep 0.5
done

psql_admin() { runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -tAq "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PGUSER_NAME'")" != 1 ]; then
    say "creating role $PGUSER_NAME"
    psql_admin -c "CREATE ROLE \"$PGUSER_NAME\" LOGIN CREATEDB PASSWORD '$PGPASS'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PGDB'")" != 1 ]; then
    say "creating database $PGDB"
    psql_admin -c "CREATE DATABASE \"$PGDB\" OWNER \"$PGUSER_NAME\""
fi

answers "$PORT" || die "PostgreSQL runs on port $PORT but $PGUSER_NAME cannot log in to $PGDB with a password on 127.0.0.1; check pg_hba.conf (a 'host all all 127.0.0.1/32 scram-sha-256' line)"
url "$PORT"
