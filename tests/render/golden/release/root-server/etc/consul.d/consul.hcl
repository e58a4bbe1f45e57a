# Consul agent: settings every node shares. Managed by hashicluster; edits are overwritten.
datacenter     = "dc1"
node_name      = "root"
data_dir       = "/opt/consul"
bind_addr      = "10.210.1.10"
advertise_addr = "10.210.1.10"

client_addr    = "127.0.0.1 10.210.1.10"
retry_join     = ["10.210.1.10"]
log_level      = "INFO"

# No calls home to check for new versions.
disable_update_check = true
