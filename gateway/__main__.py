"""``python -m gateway``: serve the gateway on GATEWAY_HOST:GATEWAY_PORT (default 127.0.0.1:8000).

The gateway is the edge, so by default it trusts no ``X-Forwarded-*`` header from its peer: the
address it rate-limits and sends on as ``X-Forwarded-For`` is the TCP peer's. Behind a load
balancer, set ``FORWARDED_ALLOW_IPS`` to that balancer's addresses or networks (never ``*``,
refused by the settings: uvicorn would then take the client's own left-most entry).

Running it with the uvicorn CLI instead? Pass ``--no-proxy-headers`` (uvicorn trusts
``X-Forwarded-For`` from 127.0.0.1 by default, which would let a local client choose its own
address), e.g. ``uvicorn gateway.main:app --port 8000 --no-proxy-headers``.
"""

import uvicorn

from gateway.config import GatewaySettings

if __name__ == "__main__":
    settings = GatewaySettings()
    trusted = settings.forwarded_allow_ips
    uvicorn.run(
        "gateway.main:app",
        host=settings.gateway_host,
        port=settings.gateway_port,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
        server_header=False,  # the services' Server header is dropped too
        access_log=False,
    )
