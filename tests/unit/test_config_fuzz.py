"""Config validation under hypothesis: whatever a stack file holds, `config.load` either
returns a spec or raises a ConfigError that names a `hashicluster:` key and a fix. Nothing
else escapes (no KeyError, TypeError, ValueError from deep inside), and valid stacks load
with the values they were given."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster import config as cfg

from .conftest import LAB_STACK, fake_pins

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON-like values, as Pulumi hands objects and lists to the program (JSON text).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children,
                                                                      max_size=4),
    max_leaves=12,
)
# A raw value: any text, or the JSON text of a scalar, a list or any value.
raw_values = st.one_of(st.text(max_size=40), json_values.map(json.dumps),
                       st.lists(json_values, min_size=1, max_size=3).map(json.dumps))
# Mostly the keys the program knows (and their sub-keys), sometimes anything.
key_names = st.sampled_from(cfg.KEYS) | st.text(min_size=1, max_size=15)
sub_keys = st.sampled_from(["provider", "network", "box", "driver", "cpus", "memory", "source", "mirror",
                            "version", "sha256", "gossip", "client1", "nodeClass", "meta", "server"])


@st.composite
def objects(draw: st.DrawFn) -> str:
    """A JSON object with the sub-keys the program reads and hostile values."""
    obj = draw(st.dictionaries(sub_keys, json_values, max_size=4))
    return json.dumps(obj)


def check(raw: dict[str, str]) -> cfg.ClusterSpec | None:
    try:
        return cfg.load(raw, "fuzz", fake_pins)
    except cfg.ConfigError as err:
        message = str(err)
        assert message.startswith(f"{cfg.NAMESPACE}:"), message
        assert ". Fix: " in message and err.fix.strip(), message
        return None


@FUZZ
@given(st.dictionaries(key_names, raw_values | objects(), max_size=6))
def test_any_config_loads_or_names_its_key_and_fix(raw: dict[str, str]) -> None:
    check(raw)


@FUZZ
@given(st.sampled_from(cfg.KEYS), raw_values | objects())
def test_one_bad_value_in_a_good_stack(key: str, value: str) -> None:
    check({**LAB_STACK, key: value})


@FUZZ
@given(servers=st.sampled_from([1, 3, 5, 7, 9]), clients=st.integers(1, cfg.MAX_CLIENTS),
       gossip=st.booleans(), domain=st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z]{2,5})?", fullmatch=True))
def test_valid_stacks_load_with_their_values(servers: int, clients: int, gossip: bool, domain: str) -> None:
    raw: dict[str, Any] = {**LAB_STACK, "servers": str(servers), "clients": str(clients),
                           "security": json.dumps({"gossip": gossip}), "domain": domain}
    spec = check(raw)
    assert spec is not None
    got = (spec.servers, spec.clients, spec.security.gossip, spec.domain)
    assert got == (servers, clients, gossip, domain)
