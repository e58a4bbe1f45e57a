"""A VM of another host kind (Debian trixie: systemd 257, cgroup v2 only) to prove the lab on."""
