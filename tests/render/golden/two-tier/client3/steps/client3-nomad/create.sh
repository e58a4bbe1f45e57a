# nomad 1.0.0 sha256 cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
# Installs nomad on this machine, or brings it up to date:
# its binary (refused, before the installed copy is touched, unless its sha256 is the pinned one),
# its files, its secret files and its systemd unit; then starts it and waits until it works.
# A change restarts it at once.
# Reads: the template values (the pin, files, user, ...); on stdin, one `PATH MODE OWNER BASE64`
# line per secret file.
# A second run changes nothing: the binary and every file are compared before they are
# written, and nothing restarts unless something changed.
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
product=nomad
changed=0
mkdir -p /var/lib/hashicluster/staging
if [ "$(sha256sum /usr/local/bin/nomad 2>/dev/null | cut -d" " -f1)" != cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ]; then
  packed=/var/lib/hashicluster/uploads/nomad-1.0.0.gz new=/var/lib/hashicluster/uploads/nomad-1.0.0.gz.bin
  [ -f "$packed" ] || fail "nomad 1.0.0: $packed was not uploaded"
  gzip -dc "$packed" > "$new" || fail "nomad 1.0.0: the uploaded $packed does not unpack (gzip -d); nothing installed"
  got=$(sha256sum "$new" | cut -d" " -f1)
  [ "$got" = cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ] || fail "nomad 1.0.0: sha256 of the uploaded binary is $got, expected cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc; nothing installed"
  keep_original /usr/local/bin/nomad
  install -m 0755 "$new" /usr/local/bin/nomad.new && mv /usr/local/bin/nomad.new /usr/local/bin/nomad; changed=1
fi
rm -f /var/lib/hashicluster/uploads/nomad-1.0.0.gz /var/lib/hashicluster/uploads/nomad-1.0.0.gz.bin
make_dir /opt/nomad 0750 root
make_dir /etc/nomad.d 0750 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Nomad agent: settings every node shares. Managed by hashicluster; edits are overwritten.
datacenter = "dc1"
region     = "global"
name       = "client3"
data_dir   = "/opt/nomad"
bind_addr  = "10.210.1.33"

# No calls home to check for new versions.
disable_update_check = true

advertise {
  http = "10.210.1.33"
  rpc  = "10.210.1.33"
  serf = "10.210.1.33"
}

# Services and checks are registered in the local Consul agent, and the agents find
# each other through it.
consul {
  address = "127.0.0.1:8501"
  ssl     = true
  ca_file = "/etc/nomad.d/tls/ca.pem"
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/nomad.d/nomad.hcl 0644 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# TLS with the cluster's CA. Managed by hashicluster; edits are overwritten.
# The key and certificates come on the install step's stdin (the key is a secret).
tls {
  http      = true
  rpc       = true
  ca_file   = "/etc/nomad.d/tls/ca.pem"
  cert_file = "/etc/nomad.d/tls/agent.pem"
  key_file  = "/etc/nomad.d/tls/agent-key.pem"
  # Servers only with server.global.nomad, clients only with client.global.nomad.
  verify_server_hostname = true
  # API clients check the agent with the CA; the ACL tokens say who they are.
  verify_https_client = false
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/nomad.d/tls.hcl 0644 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Nomad ACLs: nothing is allowed without a token. Managed by hashicluster; edits are overwritten.
acl {
  enabled = true
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/nomad.d/acl.hcl 0644 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Nomad client. Managed by hashicluster; edits are overwritten.
client {
  enabled = true
  # The interface that carries this node's address (a go-sockaddr template, resolved by
  # Nomad): machines need no default route.
  network_interface = "{{ GetAllInterfaces | include \"address\" \"10.210.1.33\" | attr \"name\" }}"

  # Not a cloud VM: skip the cloud metadata probes (they would reach for 169.254.169.254).
  options {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

# Docker (installed before Nomad on every client): containers unprivileged, no host paths
# mounted into them; each container labelled with its job, group and task (cAdvisor shows them).
plugin "docker" {
  config {
    allow_privileged = false
    volumes {
      enabled = false
    }
    extra_labels = ["job_name", "task_group_name", "task_name", "namespace", "node_name"]
  }
}

# raw_exec runs tasks as root without isolation: on only when a job of the stack's list uses
# it (jobs/fib-raw-exec.nomad.hcl does).
plugin "raw_exec" {
  config {
    enabled = false
  }
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/nomad.d/client.hcl 0644 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Managed by hashicluster; edits are overwritten.
[Unit]
Description=Nomad agent (client)
Documentation=https://developer.hashicorp.com/nomad/docs
Wants=network-online.target consul.service
After=network-online.target consul.service

[Service]
# Clients run as root: task drivers need it.
ExecStart=/usr/local/bin/nomad agent -config=/etc/nomad.d
ExecReload=/bin/kill --signal HUP $MAINPID
KillMode=process
KillSignal=SIGINT
Restart=on-failure
RestartSec=2
LimitNOFILE=65536
TasksMax=infinity

[Install]
WantedBy=multi-user.target
HASHICLUSTER_EOF
put_file "$tmp" /etc/systemd/system/nomad.service 0644 root
while read -r path mode owner data; do
  tmp=$(mktemp) && printf %s "$data" | base64 -d > "$tmp"
  put_file "$tmp" "$path" "$mode" "$owner"
done
[ -s /etc/nomad.d/tls/ca.pem ] || fail "nomad: the secret file /etc/nomad.d/tls/ca.pem did not arrive on stdin"
[ -s /etc/nomad.d/tls/agent.pem ] || fail "nomad: the secret file /etc/nomad.d/tls/agent.pem did not arrive on stdin"
[ -s /etc/nomad.d/tls/agent-key.pem ] || fail "nomad: the secret file /etc/nomad.d/tls/agent-key.pem did not arrive on stdin"
[ -s /etc/nomad.d/consul-token.hcl ] || fail "nomad: the secret file /etc/nomad.d/consul-token.hcl did not arrive on stdin"
[ -s /etc/nomad.d/api.token ] || fail "nomad: the secret file /etc/nomad.d/api.token did not arrive on stdin"
[ -s /etc/nomad.d/api.header ] || fail "nomad: the secret file /etc/nomad.d/api.header did not arrive on stdin"
if [ -e /etc/nomad.d/gossip.hcl ]; then rm -f /etc/nomad.d/gossip.hcl; changed=1; fi
# What this step put in place, for the drift probe (templates/probe/observe.py): the sha256 of
# each file and of the binary, as sha256sum prints them.
mkdir -p /var/lib/hashicluster/manifest
sha256sum \
  /usr/local/bin/nomad \
  /etc/nomad.d/nomad.hcl \
  /etc/nomad.d/tls.hcl \
  /etc/nomad.d/acl.hcl \
  /etc/nomad.d/client.hcl \
  /etc/systemd/system/nomad.service \
  /etc/nomad.d/tls/ca.pem \
  /etc/nomad.d/tls/agent.pem \
  /etc/nomad.d/tls/agent-key.pem \
  /etc/nomad.d/consul-token.hcl \
  /etc/nomad.d/api.token \
  /etc/nomad.d/api.header \
  > /var/lib/hashicluster/manifest/nomad.sha256.new && mv /var/lib/hashicluster/manifest/nomad.sha256.new /var/lib/hashicluster/manifest/nomad.sha256
if [ "$changed" = 1 ]; then systemctl daemon-reload; fi
keep_service
systemctl enable --quiet nomad
if [ "$changed" = 1 ]; then systemctl restart nomad; else systemctl start nomad; fi
use_api
ready_state() { NOMAD_ADDR=$NOMAD_SCHEME://10.210.1.33:4646 nomad agent-info | head -40; journalctl -u nomad -n 20 --no-pager; }
ready() { nomad_node_ready "$NOMAD_SCHEME://10.210.1.33:4646"; }
wait_for "the local nomad agent" 120 ready_state ready
