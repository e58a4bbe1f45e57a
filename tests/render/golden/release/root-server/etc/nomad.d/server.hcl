# Nomad server. Managed by hashicluster; edits are overwritten.
server {
  enabled          = true
  bootstrap_expect = 1
}
