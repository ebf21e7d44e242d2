"""``python -m bench.serve``: one uvicorn worker process on its own ``SO_REUSEPORT`` socket.

``uvicorn --workers N`` shares one listening socket between its workers, and uvloop accepts connections in
batches, so a load generator's keep-alive connections land unevenly: on 2 vCPUs the bench saw 32/0 and 28/4
splits as often as 16/16, and the same endpoint swung between 8k and 16k req/s from one second to the next. The
bench therefore starts N of these processes on one port; the kernel spreads connections across their sockets by
hash, as in a ``SO_REUSEPORT`` deployment. Every stack the bench compares is served this way.
"""

from __future__ import annotations

import argparse
import socket

import uvicorn


def main() -> None:
    """Bind 127.0.0.1:PORT with SO_REUSEPORT and serve APP there with uvloop + httptools."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("app", help="module:attribute of the ASGI app (or of its factory, with --factory)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--lifespan", default="on", choices=["on", "off", "auto"])
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", args.port))
    config = uvicorn.Config(
        args.app,
        factory=args.factory,
        lifespan=args.lifespan,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
