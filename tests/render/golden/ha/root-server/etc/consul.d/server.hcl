# Consul server. Managed by hashicluster; edits are overwritten.
server           = true
bootstrap_expect = 3

ui_config {
  enabled = true
}
