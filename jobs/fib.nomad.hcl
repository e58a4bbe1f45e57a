# fib: a small HTTP service that computes Fibonacci numbers, three containers behind the
# load balancer, which routes every service tagged "lb" under /<service>/:
#
#   curl http://<load balancer>/fib/10    -> {"n": 10, "fib": 55, "instance": ..., "host": ...}
#
# The image is built from jobs/fib/ (its Dockerfile, fib.py) by the Pulumi program on a client
# and pushed to the cluster's registry on the load balancer; the program submits this file
# with `image` set to the tag of that build. By hand, from the repository root:
#
#   NOMAD_ADDR=https://<server>:4646 nomad run jobs/fib.nomad.hcl     # the latest build
#
# jobs/fib-raw-exec.nomad.hcl is the same service without containers (driver raw_exec).
variable "image" {
  description = "The fib image: jobs/fib/ as built and pushed by the program"
  type        = string
  default     = "frontend.lb.demo:5000/fib:latest"
}

job "fib" {
  datacenters = ["*"]
  type        = "service"

  # An instance counts as healthy once its check has passed for a second (each check runs
  # every second): a deployment, and with it `pulumi up`, moves on that much sooner. A real
  # service would wait longer for its own warm-up.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "1s"
    healthy_deadline  = "120s"
    progress_deadline = "180s"
    auto_revert       = true
  }

  group "fib" {
    count = 3

    network {
      # The container listens on 8080 (the image's FIB_PORT); Nomad maps a dynamic port of
      # the client's address to it.
      port "http" {
        to = 8080
      }
    }

    service {
      name     = "fib"
      provider = "consul"
      port     = "http"
      tags     = ["lb"]

      check {
        name     = "fib-health"
        type     = "http"
        path     = "/health"
        interval = "1s"
        timeout  = "1s"
      }
    }

    restart {
      attempts = 3
      interval = "1m"
      delay    = "2s"
      mode     = "fail"
    }

    reschedule {
      delay          = "5s"
      delay_function = "constant"
      unlimited      = true
    }

    task "fib" {
      driver = "docker"

      config {
        image = var.image
        ports = ["http"]
        # The client's host name, so that fib's answers name the machine (as without containers).
        hostname = "${attr.unique.hostname}"
      }

      kill_timeout = "5s"
      # Nomad takes the instance out of Consul first, then waits this long before stopping it,
      # so the load balancer (consul-template) stops routing to it before it goes away.
      shutdown_delay = "2s"

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
