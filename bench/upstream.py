"""The benchmark's ordering and reservation service: a raw asyncio HTTP/1.1
responder, kept cheap so that it is never the bottleneck.

Any order id is an open order of CUSTOMER for AMOUNT CURRENCY (what the load
sends); any reservation id is an active reservation of CUSTOMER. Keep-alive
and pipelining are honoured; anything but GET /orders/{id} or
GET /reservations/{id} is a 404.

    python bench/upstream.py --port 8080 --customer UUID --amount 150.00 --currency USD
"""

from __future__ import annotations

import argparse
import asyncio
import signal

_NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
              b"Content-Length: 2\r\n\r\n{}")


def _answer(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class Responder(asyncio.Protocol):
    def __init__(self, order_tail: bytes, reservation_tail: bytes):
        self.order_tail = order_tail
        self.reservation_tail = reservation_tail
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            # GETs only: no body to skip.
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0]
            out.append(self._route(method, path))
        if out:
            self.transport.write(b"".join(out))
        if len(self.buffer) > 65536:
            self.transport.close()

    def _route(self, method: bytes, path: bytes) -> bytes:
        if method == b"GET":
            if path.startswith(b"/orders/"):
                return _answer(b'{"id":"' + path[8:] + self.order_tail)
            if path.startswith(b"/reservations/"):
                return _answer(b'{"id":"' + path[14:] + self.reservation_tail)
        return _NOT_FOUND


async def serve(host: str, port: int, customer: str, amount: str, currency: str) -> None:
    order_tail = (f'","customerId":"{customer}","totalAmount":{amount},'
                  f'"currency":"{currency}","status":"pending"}}').encode()
    reservation_tail = (f'","customerId":"{customer}","status":"active",'
                        f'"expiresAt":"2099-01-01T00:00:00Z"}}').encode()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Responder(order_tail, reservation_tail),
                                      host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--customer", required=True)
    parser.add_argument("--amount", required=True)
    parser.add_argument("--currency", default="USD")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.customer, args.amount, args.currency))


if __name__ == "__main__":
    main()
