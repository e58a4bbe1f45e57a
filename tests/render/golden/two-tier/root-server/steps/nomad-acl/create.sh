# Nomad's ACLs (run on the root server, after the Nomad servers' gate): bootstraps them with
# the management token the program made (/etc/nomad.d/api.token on the servers; Nomad accepts
# it once, afterwards the token must simply work), writes the policies, and makes (or finds)
# the tokens machine, jobs, status. Nomad makes their secrets itself: the step prints one
# `KIND SECRET` line per token on stdout, a secret output that nothing logs.
# Reads: /etc/nomad.d/api.token, the API settings of /etc/consul.d/api.env, the template values
# (policies, tokens). Every answer is read as JSON with python3.
# A second run changes nothing: the bootstrap is refused, each policy is written with the same
# content, each token is found by its name.
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
command -v python3 >/dev/null || fail "nomad: python3 is needed to read and write the ACLs' JSON"
use_api
export NOMAD_ADDR=$NOMAD_SCHEME://10.210.1.10:4646
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
json_set '{}' BootstrapSecret /etc/nomad.d/api.token > "$tmp/bootstrap.json"
curl -s ${NOMAD_CACERT:+--cacert "$NOMAD_CACERT"} -X POST --data-binary @"$tmp/bootstrap.json" \
  "$NOMAD_ADDR/v1/acl/bootstrap" >/dev/null 2>&1 || true
token_works() { api "$NOMAD_ADDR/v1/acl/token/self" >/dev/null; }
refused() { echo 'the bootstrap was refused, or another management token was used'; }
wait_for "Nomad's ACL system (the management token)" 60 refused token_works
policy() {  # NAME BODY: create the policy NAME (BODY: its JSON), or bring it up to date
  printf '%s\n' "$2" > "$tmp/policy.json"
  api -X POST --data-binary @"$tmp/policy.json" "$NOMAD_ADDR/v1/acl/policy/$1" >/dev/null \
    || fail "nomad: cannot write the ACL policy $1"
}
accessor() {  # NAME: the accessor ID of the token NAME (nothing when there is none)
  nomad acl token list -json | json_rows Name AccessorID | while IFS=$'\t' read -r name id; do
    if [ "$name" = "$1" ]; then echo "$id"; break; fi
  done
}
token() {  # KIND NAME POLICY: print `KIND SECRET` of the token NAME, made if missing
  a=$(accessor "$2")
  [ -n "$a" ] || a=$(nomad acl token create -name="$2" -policy="$3" -json | json_field AccessorID)
  [ -n "$a" ] || fail "nomad: cannot make the ACL token $2"
  echo "$1 $(api "$NOMAD_ADDR/v1/acl/token/$a" | json_field SecretID)"
}
policy hashicluster-machine '{"Name":"hashicluster-machine","Description":"hashicluster","Rules":"node { policy = \"write\" }\nagent { policy = \"read\" }\noperator { policy = \"read\" }\n"}'
policy hashicluster-jobs '{"Name":"hashicluster-jobs","Description":"hashicluster","Rules":"namespace \"default\" { policy = \"write\" }\nnode { policy = \"read\" }\n"}'
policy hashicluster-status '{"Name":"hashicluster-status","Description":"hashicluster","Rules":"namespace \"*\" { capabilities = [\"list-jobs\", \"read-job\"] }\nnode { policy = \"read\" }\nagent { policy = \"read\" }\noperator { policy = \"read\" }\n"}'
token machine hashicluster-machine hashicluster-machine
token jobs hashicluster-jobs hashicluster-jobs
token status hashicluster-status hashicluster-status
