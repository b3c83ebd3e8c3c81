"""Binance endpoints as settings: defaults, [binance] table, environment, test network, checks."""

import pytest

from naive_mp.exchange.endpoints import PRODUCTION, TESTNET, EndpointError, endpoints


def test_defaults_and_the_test_network():
    assert endpoints(environ={}) == PRODUCTION
    assert endpoints(environ={}, testnet=True) == TESTNET


def test_the_config_table_then_the_environment_override():
    got = endpoints({"api_url": "http://127.0.0.1:9/", "stream_url": "ws://127.0.0.1:9"},
                    environ={"NAIVE_MP_BINANCE_STREAM_URL": "ws://127.0.0.1:10"})
    assert (got.api_url, got.stream_url, got.ws_api_url) == ("http://127.0.0.1:9", "ws://127.0.0.1:10",
                                                             PRODUCTION.ws_api_url)


@pytest.mark.parametrize("table, env, named", [
    ({"api": "http://x"}, {}, "unknown key"),
    ({"api_url": "ws://x"}, {}, "[binance] api_url"),
    ({"stream_url": 5}, {}, "expected a URL"),
    ({}, {"NAIVE_MP_BINANCE_WS_API_URL": "https://x"}, "NAIVE_MP_BINANCE_WS_API_URL"),
    ({}, {"NAIVE_MP_BINANCE_API_URL": "http://"}, "NAIVE_MP_BINANCE_API_URL"),
])
def test_a_bad_endpoint_is_named(table, env, named):
    with pytest.raises(EndpointError, match=named.replace("[", r"\[").replace("]", r"\]")):
        endpoints(table, environ=env)
