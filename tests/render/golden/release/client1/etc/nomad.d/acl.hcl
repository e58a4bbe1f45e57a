# Nomad ACLs: nothing is allowed without a token. Managed by hashicluster; edits are overwritten.
acl {
  enabled = true
}
