"""Builds a bootable Debian libvirt Vagrant box locally (no box downloads needed)."""
