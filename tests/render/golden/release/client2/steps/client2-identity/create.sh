# identity of client2.demo: its hostname, and the managed block of /etc/hosts that names
# every node of the cluster; done when every node's name resolves here.
# Reads: the template values hostname and hosts (the block's lines).
# A second run changes nothing: each file is compared before it is written.
set -eu
want=client2.demo
if [ "$(cat /etc/hostname 2>/dev/null || true)" != "$want" ]; then echo "$want" > /etc/hostname; fi
if [ "$(hostname)" != "$want" ]; then hostname "$want"; fi
tmp=$(mktemp)
sed '/^# BEGIN hashicluster$/,/^# END hashicluster$/d' /etc/hosts > "$tmp"
printf '%s\n' '# BEGIN hashicluster' '10.210.1.10 root.server.demo root' '10.210.1.20 frontend.lb.demo frontend' '10.210.1.31 client1.demo client1' '10.210.1.32 client2.demo client2' '10.210.1.33 client3.demo client3' '# END hashicluster' >> "$tmp"
if cmp -s "$tmp" /etc/hosts; then rm -f "$tmp"; else cat "$tmp" > /etc/hosts; rm -f "$tmp"; fi
getent hosts root.server.demo >/dev/null
getent hosts frontend.lb.demo >/dev/null
getent hosts client1.demo >/dev/null
getent hosts client2.demo >/dev/null
getent hosts client3.demo >/dev/null
