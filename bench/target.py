"""Where the benchmark's requests may go: lab addresses (10.210.x.y, which exist only inside
the lab network, where the benchmark's probes, wrk and the failover watch run) and loopback;
every other address is refused before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

LAB_PREFIX = "10.210."


class LoadError(ValueError):
    """The requests or the load cannot be sent as asked."""


@dataclass(frozen=True)
class Target:
    """Where the GETs go."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str, allowed_prefix: str = LAB_PREFIX,
              schemes: tuple[str, ...] = ("http",)) -> Target:
        """An http:// URL (or one of SCHEMES) to a lab address (10.210.x.y) or loopback;
        nothing else is loaded."""
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            raise LoadError(f"{url!r} is not an {'/'.join(schemes)}://HOST[:PORT]/PATH URL")
        host = parts.hostname
        if not (host.startswith(allowed_prefix) or host.startswith("127.")):
            raise LoadError(f"{host} is neither a lab address ({allowed_prefix}x.y) nor loopback: "
                            "the load generator sends traffic only inside the lab")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(host=host, port=parts.port or 80, path=path)
