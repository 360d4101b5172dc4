#!/bin/sh
# Start a throwaway OpenLDAP directory (Debian's slapd) for the classroom login tests and the
# docs' LDAP recipe; print its URL as the last line.
#
#   URL=$(bash scripts/ldap-up.sh /tmp/ldap-dir | tail -n 1)     # ldap://127.0.0.1:PORT
#   kill "$(cat /tmp/ldap-dir/slapd.pid)"                          # stop it
#
# Everything lives in DIR (config, database, pid file, log); the server listens on 127.0.0.1
# only, on PORT (default: a free one). The directory dc=berth,dc=test holds a class:
#   ou=people: student1, student2 (class-a), teacher1 (class-a-teachers), outsider (no group);
#              every password is `berth-ldap`
#   ou=groups: cn=class-a, cn=class-a-teachers (groupOfNames, member = the users' DNs)
# The admin is cn=admin,dc=berth,dc=test, password `berth-ldap-admin`.
# Installs slapd and ldap-utils (Debian) when missing, as scripts/test.sh does.
set -eu

DIR=${1:?usage: ldap-up.sh DIR [PORT]}
PORT=${2:-}
SUFFIX="dc=berth,dc=test"
PASSWORD=berth-ldap
ADMIN_PASSWORD=berth-ldap-admin

say() { echo "ldap-up: $*" >&2; }
die() { say "$*"; exit 1; }

SLAPD=$(command -v slapd || echo /usr/sbin/slapd)
if [ ! -x "$SLAPD" ] || ! command -v slappasswd >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "slapd is not installed; as root: apt-get install -y slapd ldap-utils"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slapd ldap-utils >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q slapd ldap-utils >/dev/null; }
    SLAPD=$(command -v slapd || echo /usr/sbin/slapd)
fi
SLAPADD=$(command -v slapadd || echo /usr/sbin/slapadd)

if [ -z "$PORT" ]; then
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
mkdir -p "$DIR/db"
DIR=$(cd "$DIR" && pwd)
[ ! -f "$DIR/slapd.pid" ] || ! kill -0 "$(cat "$DIR/slapd.pid")" 2>/dev/null || die "a slapd of $DIR is running already (pid $(cat "$DIR/slapd.pid"))"

hash() { slappasswd -s "$1"; }
cat > "$DIR/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $DIR/slapd.pid
argsfile $DIR/slapd.args
database mdb
maxsize 10485760
suffix "$SUFFIX"
rootdn "cn=admin,$SUFFIX"
rootpw $(hash "$ADMIN_PASSWORD")
directory $DIR/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
EOF

user() {  # uid, given name, surname
    cat <<EOF
dn: uid=$1,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: $1
cn: $2 $3
givenName: $2
sn: $3
mail: $1@berth.test
userPassword: $(hash "$PASSWORD")

EOF
}
{
    cat <<EOF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
o: Berth test school
dc: berth

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups

EOF
    user student1 Ada Student
    user student2 Ben Student
    user teacher1 Tess Teacher
    user outsider Otto Outsider
    cat <<EOF
dn: cn=class-a,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: class-a
member: uid=student1,ou=people,$SUFFIX
member: uid=student2,ou=people,$SUFFIX

dn: cn=class-a-teachers,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: class-a-teachers
member: uid=teacher1,ou=people,$SUFFIX
EOF
} > "$DIR/class.ldif"

rm -rf "$DIR/db" && mkdir -p "$DIR/db"
"$SLAPADD" -q -f "$DIR/slapd.conf" -l "$DIR/class.ldif" 2>"$DIR/slapadd.log" || die "slapadd failed: $(cat "$DIR/slapadd.log")"
"$SLAPD" -f "$DIR/slapd.conf" -h "ldap://127.0.0.1:$PORT/" 2>"$DIR/slapd.log" || die "slapd did not start: $(cat "$DIR/slapd.log")"
i=0
until ldapsearch -x -H "ldap://127.0.0.1:$PORT" -D "cn=admin,$SUFFIX" -w "$ADMIN_PASSWORD" -b "$SUFFIX" -s base dn >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 50 ] || die "slapd does not answer on 127.0.0.1:$PORT (log: $DIR/slapd.log)"
    sleep 0.1
done
say "slapd $(cat "$DIR/slapd.pid") serves $SUFFIX on 127.0.0.1:$PORT (stop: kill \$(cat $DIR/slapd.pid))"
echo "ldap://127.0.0.1:$PORT"
