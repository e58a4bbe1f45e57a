# Nomad agent: settings every node shares. Managed by hashicluster; edits are overwritten.
datacenter = "dc1"
region     = "global"
name       = "client1"
data_dir   = "/opt/nomad"
bind_addr  = "10.210.1.31"

# No calls home to check for new versions.
disable_update_check = true

advertise {
  http = "10.210.1.31"
  rpc  = "10.210.1.31"
  serf = "10.210.1.31"
}

# Services and checks are registered in the local Consul agent, and the agents find
# each other through it.
consul {
  address = "127.0.0.1:8501"
  ssl     = true
  ca_file = "/etc/nomad.d/tls/ca.pem"
}
