# Consul agent: settings every node shares. Managed by hashicluster; edits are overwritten.
datacenter     = "dc1"
node_name      = "client2"
data_dir       = "/opt/consul"
bind_addr      = "10.210.1.32"
advertise_addr = "10.210.1.32"

client_addr    = "127.0.0.1 10.210.1.32"
retry_join     = ["10.210.1.10"]
log_level      = "INFO"

# No calls home to check for new versions.
disable_update_check = true
