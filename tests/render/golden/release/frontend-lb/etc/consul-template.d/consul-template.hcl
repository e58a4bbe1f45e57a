# consul-template on the load balancer frontend.lb.demo: nginx's routes from Consul.
# Managed by hashicluster; edits are overwritten.
#
# Run with -config=/etc/consul-template.d/consul-template.hcl (this file only: consul-template
# would read every file of a -config directory as configuration, the templates included).
#
# After both files are written, the command checks nginx's whole config and reloads only if
# it passes. A refused config is reported and nginx keeps its routes (the command still
# exits 0: a failing command would stop consul-template). A stopped nginx stays stopped.

consul {
  address = "127.0.0.1:8501"
  ssl {
    enabled = true
    verify  = true
    ca_cert = "/etc/consul.d/tls/ca.pem"
  }

  # Keep trying while the local agent restarts (0 = no limit).
  retry {
    enabled     = true
    attempts    = 0
    backoff     = "250ms"
    max_backoff = "5s"
  }
}

log_level = "info"

# Render once changes settle for 500 ms, at most 2 s after the first: an instance that fails
# its health check leaves the load balancer within seconds.
wait {
  min = "500ms"
  max = "2s"
}

# The upstream groups (nginx's http context) ...
template {
  source               = "/etc/consul-template.d/services.ctmpl"
  destination          = "/etc/nginx/conf.d/services.conf"
  perms                = 0644
  error_on_missing_key = false
  command              = ["/bin/sh", "-c", "if nginx -t -q; then systemctl try-reload-or-restart nginx; else echo 'consul-template: nginx -t refused the new routes (see above); nginx keeps the previous ones' >&2; fi"]
  command_timeout      = "30s"
}

# ... and the routes (inside the port 80 server). Both come from the same data in the same
# pass, and the reload command, the same for both, runs once after both are written.
template {
  source               = "/etc/consul-template.d/locations.ctmpl"
  destination          = "/etc/nginx/locations.d/services.conf"
  perms                = 0644
  error_on_missing_key = false
  command              = ["/bin/sh", "-c", "if nginx -t -q; then systemctl try-reload-or-restart nginx; else echo 'consul-template: nginx -t refused the new routes (see above); nginx keeps the previous ones' >&2; fi"]
  command_timeout      = "30s"
}
