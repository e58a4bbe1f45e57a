# Consul's ACLs (run on the root server, after the Consul servers' gate): writes the policies
# and the tokens whose secrets the program made: each machine's agent token (its node identity
# and its own agent API), the Nomad agents' token, consul-template's, the read-only status
# token (`./run status`: read nodes, services, agents and the operator API) and the DNS token
# (every agent's default: read nodes and services). A machine that left
# the stack loses its token and its policy. Consul bootstrapped itself with the management
# token of the servers' config (`initial_management`): no bootstrap call here.
# Reads: on stdin, one `NAME SECRET` line per token (machines by short host name, `nomad`,
# `consul-template`, `status`, `dns`); the template values (policies, tokens, the stack's machines); the
# management token through /etc/consul.d/api.env. Every answer is read as JSON with python3.
# A second run changes nothing: each policy and token is written to the same ID with the same
# content, and only the tokens and policies of machines gone are removed.
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
command -v python3 >/dev/null || fail "consul: python3 is needed to read and write the ACLs' JSON"
use_api
token_works() { api "$CONSUL_HTTP_ADDR/v1/acl/token/self" >/dev/null; }
members() { consul members; }
wait_for "Consul's ACL system (the management token)" 120 members token_works
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The secrets, from stdin into files of mode 0600.
while read -r key secret; do printf %s "$secret" > "$tmp/secret-$key"; done
C=$CONSUL_HTTP_ADDR
policy() {  # NAME BODY: create the policy NAME (BODY: its JSON), or bring it up to date
  printf '%s\n' "$2" > "$tmp/policy.json"
  id=$(api "$C/v1/acl/policy/name/$1" 2>/dev/null | json_field ID) || true
  api -X PUT --data-binary @"$tmp/policy.json" "$C/v1/acl/policy${id:+/$id}" >/dev/null \
    || fail "consul: cannot write the ACL policy $1"
}
token() {  # NAME ACCESSOR BODY: NAME's token (BODY: its JSON but the secret), made or brought up to date
  [ -s "$tmp/secret-$1" ] || fail "consul: no secret for the token $1 on stdin"
  json_set "$3" SecretID "$tmp/secret-$1" > "$tmp/token.json"
  if api "$C/v1/acl/token/$2" >/dev/null 2>&1; then path=/$2; else path=; fi
  api -X PUT --data-binary @"$tmp/token.json" "$C/v1/acl/token$path" >/dev/null \
    || fail "consul: cannot write the ACL token $1"
}
policy hashicluster-nomad '{"Name":"hashicluster-nomad","Description":"hashicluster","Rules":"agent_prefix \"\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }\nservice_prefix \"\" { policy = \"write\" }\n"}'
policy hashicluster-consul-template '{"Name":"hashicluster-consul-template","Description":"hashicluster","Rules":"node_prefix \"\" { policy = \"read\" }\nservice_prefix \"\" { policy = \"read\" }\n"}'
policy hashicluster-status '{"Name":"hashicluster-status","Description":"hashicluster","Rules":"agent_prefix \"\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }\nservice_prefix \"\" { policy = \"read\" }\noperator = \"read\"\nkey_prefix \"\" { policy = \"deny\" }\n"}'
policy hashicluster-dns '{"Name":"hashicluster-dns","Description":"hashicluster","Rules":"node_prefix \"\" { policy = \"read\" }\nservice_prefix \"\" { policy = \"read\" }\nquery_prefix \"\" { policy = \"read\" }\n"}'
policy hashicluster-node-root '{"Name":"hashicluster-node-root","Description":"hashicluster","Rules":"agent \"root\" { policy = \"write\" }\nnode_prefix \"\" { policy = \"read\" }\nservice \"hashicluster-backend\" { policy = \"write\" }\n"}'
policy hashicluster-node-frontend '{"Name":"hashicluster-node-frontend","Description":"hashicluster","Rules":"agent \"frontend\" { policy = \"write\" }\nnode_prefix \"\" { policy = \"read\" }\nservice \"hashicluster-backend\" { policy = \"write\" }\n"}'
policy hashicluster-node-client1 '{"Name":"hashicluster-node-client1","Description":"hashicluster","Rules":"agent \"client1\" { policy = \"write\" }\nnode_prefix \"\" { policy = \"read\" }\nservice \"hashicluster-backend\" { policy = \"write\" }\n"}'
policy hashicluster-node-client2 '{"Name":"hashicluster-node-client2","Description":"hashicluster","Rules":"agent \"client2\" { policy = \"write\" }\nnode_prefix \"\" { policy = \"read\" }\nservice \"hashicluster-backend\" { policy = \"write\" }\n"}'
policy hashicluster-node-client3 '{"Name":"hashicluster-node-client3","Description":"hashicluster","Rules":"agent \"client3\" { policy = \"write\" }\nnode_prefix \"\" { policy = \"read\" }\nservice \"hashicluster-backend\" { policy = \"write\" }\n"}'
token nomad b498d50d-44f7-503b-9857-102a356adc58 '{"AccessorID":"b498d50d-44f7-503b-9857-102a356adc58","Description":"hashicluster nomad agents","Policies":[{"Name":"hashicluster-nomad"}]}'
token consul-template a147deb0-0ab9-54a8-995d-9dc2c5da79e5 '{"AccessorID":"a147deb0-0ab9-54a8-995d-9dc2c5da79e5","Description":"hashicluster consul-template","Policies":[{"Name":"hashicluster-consul-template"}]}'
token status e76571be-b9c4-5784-acc2-7418aaff510c '{"AccessorID":"e76571be-b9c4-5784-acc2-7418aaff510c","Description":"hashicluster status","Policies":[{"Name":"hashicluster-status"}]}'
token dns b42f5a4a-6aba-594d-8e91-b6374e0b235e '{"AccessorID":"b42f5a4a-6aba-594d-8e91-b6374e0b235e","Description":"hashicluster dns","Policies":[{"Name":"hashicluster-dns"}]}'
token root 8e231143-4efc-543f-807b-b2849b872c52 '{"AccessorID":"8e231143-4efc-543f-807b-b2849b872c52","Description":"hashicluster node root","Policies":[{"Name":"hashicluster-node-root"}],"NodeIdentities":[{"NodeName":"root","Datacenter":"dc1"}]}'
token frontend c82ddc0c-4bfc-5725-a1b2-351411ad72bc '{"AccessorID":"c82ddc0c-4bfc-5725-a1b2-351411ad72bc","Description":"hashicluster node frontend","Policies":[{"Name":"hashicluster-node-frontend"}],"NodeIdentities":[{"NodeName":"frontend","Datacenter":"dc1"}]}'
token client1 9fcc2252-d92f-55d9-8e33-565e71589d07 '{"AccessorID":"9fcc2252-d92f-55d9-8e33-565e71589d07","Description":"hashicluster node client1","Policies":[{"Name":"hashicluster-node-client1"}],"NodeIdentities":[{"NodeName":"client1","Datacenter":"dc1"}]}'
token client2 97e7f624-8b37-5647-b47a-d432ebf13da4 '{"AccessorID":"97e7f624-8b37-5647-b47a-d432ebf13da4","Description":"hashicluster node client2","Policies":[{"Name":"hashicluster-node-client2"}],"NodeIdentities":[{"NodeName":"client2","Datacenter":"dc1"}]}'
token client3 ff119018-7afa-507d-b099-bee8a92f15e3 '{"AccessorID":"ff119018-7afa-507d-b099-bee8a92f15e3","Description":"hashicluster node client3","Policies":[{"Name":"hashicluster-node-client3"}],"NodeIdentities":[{"NodeName":"client3","Datacenter":"dc1"}]}'
echo "consul: 9 policies, 9 tokens"
# Machines that left the stack ($nodes: those of the stack now): their token and policy go.
nodes=" root frontend client1 client2 client3 "
consul acl token list -format=json | json_rows AccessorID Description \
  | while IFS=$'\t' read -r a description; do
      case $description in "hashicluster node "*) ;; *) continue;; esac
      n=${description##* }
      case $nodes in *" $n "*) ;; *)
        consul acl token delete -id "$a" >/dev/null && echo "consul: removed the token of $n";;
      esac
    done
consul acl policy list -format=json | json_rows Name \
  | while read -r p; do
      case $p in hashicluster-node-*) ;; *) continue;; esac
      case $nodes in *" ${p#hashicluster-node-} "*) ;; *)
        consul acl policy delete -name "$p" >/dev/null && echo "consul: removed the policy $p";;
      esac
    done
