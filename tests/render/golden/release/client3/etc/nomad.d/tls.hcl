# TLS with the cluster's CA. Managed by hashicluster; edits are overwritten.
# The key and certificates come on the install step's stdin (the key is a secret).
tls {
  http      = true
  rpc       = true
  ca_file   = "/etc/nomad.d/tls/ca.pem"
  cert_file = "/etc/nomad.d/tls/agent.pem"
  key_file  = "/etc/nomad.d/tls/agent-key.pem"
  # Servers only with server.global.nomad, clients only with client.global.nomad.
  verify_server_hostname = true
  # API clients check the agent with the CA; the ACL tokens say who they are.
  verify_https_client = false
}
