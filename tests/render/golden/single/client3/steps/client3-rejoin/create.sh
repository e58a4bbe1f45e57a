# client3 after its turn in the rolling restart. If that turn rebooted it (drained first,
# marked in /var/lib/hashicluster/drained-for-reboot): waits until it works again (Nomad's node ready with its drivers
# healthy, every Consul check of the machine passing but the Nomad agent's own, which Nomad
# runs every 10 s and the node's state covers), then ends the drain, which makes the
# node eligible for allocations again, and clears what was marked for restarts (the reboot
# restarted everything). Not rebooted: nothing to do.
# Reads: /var/lib/hashicluster/drained-for-reboot; /var/lib/hashicluster/restart/.
# A second run changes nothing: the mark goes once the node is eligible again.
set -eu
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
HC_STATE=${HC_STATE:-/var/lib/hashicluster}  # another only in the scripts' own tests
product=${product:-}  # whose records the functions below keep: a script that keeps any sets it
keep_original() {
  local records=$HC_STATE/placed/$product parent missing=""
  if ! grep -qxF "$1" "$records" 2>/dev/null; then
    if [ -e "$1" ] || [ -L "$1" ]; then
      mkdir -p "$HC_STATE/originals$(dirname "$1")" && cp -a "$1" "$HC_STATE/originals$1"
    fi
    parent=$(dirname "$1")
    while [ ! -e "$parent" ]; do missing=$parent; parent=$(dirname "$parent"); done
    if [ -n "$missing" ]; then record dirs "$missing"; fi
    mkdir -p "$HC_STATE/placed" && echo "$1" >> "$records"
  fi
}
record() { mkdir -p "$HC_STATE/created" && echo "$2" >> "$HC_STATE/created/$product.$1"; }
make_dir() {
  if [ ! -d "$1" ]; then mkdir -p "$1" && record dirs "$1"; fi
  chmod "$2" "$1"; chown "$3:$3" "$1"
}
claim_data() {
  if grep -qsF "$1" "$HC_STATE/created/$product.dirs" "$HC_STATE/created/$product.empty"; then return 0; fi
  if [ ! -e "$1" ]; then
    record dirs "$1"
  elif [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; then
    record empty "$(stat -c %a "$1") $1"
  fi
}
make_user() {
  if ! id -u "$1" >/dev/null 2>&1; then
    useradd --system --home-dir "$2" --shell /bin/false "$1" && record users "$1"
  fi
}
add_packages() {
  local missing="" package before
  for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"; done
  [ -n "$missing" ] || return 0
  before=$(mktemp)
  dpkg-query -W -f='${Package}\n' | sort > "$before"
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null || { rm -f "$before"; return 1; }
  dpkg-query -W -f='${Package}\n' | sort | comm -13 "$before" - | while read -r package; do record packages "$package"; done
  rm -f "$before"
}
rc_links() { find /etc/rc0.d /etc/rc1.d /etc/rc2.d /etc/rc3.d /etc/rc4.d /etc/rc5.d /etc/rc6.d /etc/rcS.d -name "[SK][0-9][0-9]$product" 2>/dev/null | sort; }
keep_service() {
  local record=$HC_STATE/created/$product.service
  [ ! -e "$record" ] || return 0
  mkdir -p "$HC_STATE/created"
  local enabled
  enabled=$(systemctl is-enabled "$product" 2>/dev/null) || true
  { echo "${enabled:-absent}"; systemctl is-active "$product" 2>/dev/null || true; rc_links; } > "$record"
}
give_back() {
  local created=$HC_STATE/created/$product path link was_enabled="" was_active=""
  if [ -f "$HC_STATE/placed/$product" ]; then
    while read -r path; do
      if [ -e "$HC_STATE/originals$path" ] || [ -L "$HC_STATE/originals$path" ]; then
        rm -rf "$path" && mv "$HC_STATE/originals$path" "$path"
      else
        rm -rf "$path"
      fi
    done < "$HC_STATE/placed/$product"
  fi
  if [ -f "$created.dirs" ]; then sort -r "$created.dirs" | while read -r path; do rm -rf "$path"; done; fi
  if [ -f "$created.empty" ]; then
    while read -r mode path; do
      find "$path" -mindepth 1 -maxdepth 1 -exec rm -rf {} + && chmod "$mode" "$path"
    done < "$created.empty"
  fi
  if [ -f "$created.users" ]; then while read -r path; do userdel "$path" 2>/dev/null || true; done < "$created.users"; fi
  if [ -s "$created.packages" ]; then
    # shellcheck disable=SC2046  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $(cat "$created.packages") >/dev/null 2>&1 ||
      echo "warning: $product: could not purge the packages it added: $(tr '\n' ' ' < "$created.packages")" >&2
  fi
  systemctl daemon-reload
  if [ -f "$created.service" ]; then
    was_enabled=$(sed -n 1p "$created.service"); was_active=$(sed -n 2p "$created.service")
    case "$was_enabled" in
      enabled) systemctl enable --quiet "$product" 2>/dev/null || true ;;
      masked) systemctl mask --quiet "$product" 2>/dev/null || true ;;
    esac
    rc_links | while read -r link; do rm -f "$link"; done
    sed -n '3,$p' "$created.service" | while read -r link; do ln -sf "../init.d/$product" "$link"; done
    if [ "$was_active" = active ]; then systemctl restart "$product" 2>/dev/null || true; fi
  fi
  rm -f "$HC_STATE/placed/$product" "$created".*
}
put_file() {
  keep_original "$2"
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
    field, op, expected = re.match(r"([^=!^]+)(=|!=|\^=|!\^=)(.*)", condition).groups()
    got = text(at(item, field))
    return {"=": got == expected, "!=": got != expected, "^=": got.startswith(expected),
            "!^=": not got.startswith(expected)}[op]
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
if [ ! -e /var/lib/hashicluster/drained-for-reboot ]; then
  echo "client3: not rebooted"
  exit 0
fi
use_api
node() { NOMAD_ADDR=$NOMAD_SCHEME://10.210.1.33:4646 nomad node status -self -json; }
node_state() { node; journalctl -u nomad -n 20 --no-pager; }
drivers_healthy() {  # every driver Nomad detected is healthy, and there are some
  local r unhealthy
  r=$(node 2>/dev/null) || return 1
  unhealthy=$(printf %s "$r" | json_count Drivers Detected=true Healthy!=true) && [ "$unhealthy" = 0 ] &&
    [ "$(printf %s "$r" | json_count Drivers Detected=true Healthy=true)" -gt 0 ]
}
checks_state() { api "$CONSUL_HTTP_ADDR/v1/agent/checks"; }
checks_passing() {
  local failing
  failing=$(api "$CONSUL_HTTP_ADDR/v1/agent/checks" 2>/dev/null |
    json_count . Status!=passing ServiceID!^=_nomad-client-) && [ "$failing" = 0 ]
}
echo "$(stamp) client3: back from its reboot; waiting until it works"
wait_for "nomad on client3 after its reboot" 180 node_state nomad_node_ready "$NOMAD_SCHEME://10.210.1.33:4646"
wait_for "the task drivers on client3" 180 node_state drivers_healthy
wait_for "the Consul checks of client3" 180 checks_state checks_passing
NOMAD_ADDR=$NOMAD_SCHEME://10.210.1.33:4646 nomad node drain -self -disable -yes
rm -f /var/lib/hashicluster/restart/* /var/lib/hashicluster/drained-for-reboot
echo "$(stamp) client3: eligible for allocations again"
