# Consul server. Managed by hashicluster; edits are overwritten.
server           = true
bootstrap_expect = 1

# Raft timing at 1x (Consul's default of 5 suits very small machines): a leader is elected in
# about a second instead of about six, and a lost leader is noticed as fast.
performance {
  raft_multiplier = 1
}

ui_config {
  enabled = true
}
