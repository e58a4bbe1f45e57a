# TLS with the cluster's CA. Managed by hashicluster; edits are overwritten.
# The key and certificates come on the install step's stdin (the key is a secret).
tls {
  defaults {
    ca_file         = "/etc/consul.d/tls/ca.pem"
    cert_file       = "/etc/consul.d/tls/agent.pem"
    key_file        = "/etc/consul.d/tls/agent-key.pem"
    verify_outgoing = true
  }
  # Agents talk to each other only with a certificate of the CA, and a server only if it
  # holds server.dc1.consul.
  internal_rpc {
    verify_incoming        = true
    verify_server_hostname = true
  }
  # API clients check the agent with the CA; the ACL tokens say who they are.
  https {
    verify_incoming = false
  }
}

# The API over HTTPS only.
ports {
  http  = -1
  https = 8501
}
