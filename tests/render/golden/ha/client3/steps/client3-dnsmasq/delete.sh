# Removes dnsmasq from this machine (the machine's resolvers as they were before it): stops the service and
# deletes what its install step put in place, its data included.
# Reads: the template values only.
# A second run changes nothing: what is gone already is skipped. Best effort (no `set -e`):
# a cluster that is broken already must not stop its own removal.
set -u
# --- hashicluster's shell library (documented in templates/steps/lib.sh)
fail() { echo "error: $*" >&2; exit 1; }
stamp() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
use_api() {
  # shellcheck source=/dev/null
  [ ! -r /etc/consul.d/api.env ] || . /etc/consul.d/api.env
}
wait_for() {
  local what=$1 timeout=$2 state=$3 deadline
  shift 3
  deadline=$(( $(date +%s) + timeout ))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "error: $what not ready after ${timeout}s; last state seen:" >&2
      ("$state") >&2 2>&1 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "$what: ready"
}
put_file() {
  if ! cmp -s "$1" "$2"; then
    install -D -m "$3" -o "$4" -g "$4" "$1" "$2"
    # shellcheck disable=SC2034  # read by the script that calls put_file
    changed=1
  else
    chmod "$3" "$2"; chown "$4:$4" "$2"
  fi
  rm -f "$1"
}
has_leader() { api "$1/v1/status/leader" | grep -q :; }
alive() {
  local role=node count
  [ "$1" = server ] && role=consul
  count=$(api "$CONSUL_HTTP_ADDR/v1/agent/members" 2>/dev/null | json_count . Status=1 Tags.role="$role") &&
    [ "$count" -ge "$2" ]
}
nomad_node_ready() { [ "$(NOMAD_ADDR=$1 nomad node status -self -json 2>/dev/null | json_field Status)" = ready ]; }
json_field() {
  python3 -c 'import json, sys
try:
    value = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
field = value.get(sys.argv[1], "") if isinstance(value, dict) else ""
print(field if isinstance(field, str) else json.dumps(field))' "$1"
}
json_count() {
  python3 -c 'import json, re, sys
def at(value, path):
    for key in path.split(".") if path != "." else []:
        value = value.get(key) if isinstance(value, dict) else None
    return value
def text(value):
    return value if isinstance(value, str) else json.dumps(value)
def matches(item, condition):
    field, op, expected = re.match(r"([^=!^]+)(=|!=|\^=)(.*)", condition).groups()
    got = text(at(item, field))
    return {"=": got == expected, "!=": got != expected, "^=": got.startswith(expected)}[op]
try:
    items = at(json.load(sys.stdin), sys.argv[1])
except ValueError:
    sys.exit(1)
items = list(items.values()) if isinstance(items, dict) else items or []
print(sum(all(matches(item, c) for c in sys.argv[2:]) for item in items))' "$@"
}
json_rows() {
  python3 -c 'import json, sys
try:
    items = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
for item in items or []:
    print("\t".join(str(item.get(field, "")) for field in sys.argv[1:]))' "$@"
}
json_set() {
  python3 -c 'import json, sys
value = json.loads(sys.argv[1])
with open(sys.argv[3]) as f:
    value[sys.argv[2]] = f.read().rstrip("\n")
print(json.dumps(value))' "$@"
}
# --- end of the library
if [ -e /etc/systemd/resolved.conf.d/hashicluster-consul.conf ]; then
  rm -f /etc/systemd/resolved.conf.d/hashicluster-consul.conf && systemctl restart systemd-resolved
elif [ -f /var/lib/hashicluster/resolv.conf.upstream ] && [ ! -L /var/lib/hashicluster/resolv.conf.upstream ]; then
  cat /var/lib/hashicluster/resolv.conf.upstream > /etc/resolv.conf
fi
rm -f /var/lib/hashicluster/resolv.conf.upstream
systemctl disable --now --quiet dnsmasq 2>/dev/null || true
awk '$2 ~ "^/opt/dnsmasq/" {print $2}' /proc/mounts | sort -r | xargs -r umount -l
rm -rf /etc/dnsmasq.d /opt/dnsmasq /usr/local/bin/dnsmasq /etc/systemd/system/dnsmasq.service /var/lib/hashicluster/staging/dnsmasq-[0-9]* /var/lib/hashicluster/staging/dnsmasq.installed-zip-sha256 /var/lib/hashicluster/staging/dnsmasq.installed-binary-sha256 /var/lib/hashicluster/restart/dnsmasq /var/lib/hashicluster/manifest/dnsmasq.sha256
systemctl daemon-reload
