#!/usr/bin/env python3
"""A UDP forwarder that adds delay and jitter, for the network bench (this kernel has no netem).

    benches/network/udp-delay.py --listen 127.0.0.1:3479 --to 127.0.0.1:3478 --delay-ms 40 --jitter-ms 10

Every datagram a client sends to --listen leaves for --to from a socket of that client's own (as a NAT would give
it), and every answer goes back to the client: each way after --delay-ms plus a uniformly random 0..--jitter-ms.
Order is kept per direction (a packet never overtakes the one before it, as on one link; netem would reorder).
The bench puts it in front of coturn and makes both peers relay-only, so the whole media path is delayed.
Bounded: at most 256 clients and 4,096 datagrams waiting per direction; beyond that a datagram is dropped.
"""
import argparse
import asyncio
import random
import socket

MAX_CLIENTS = 256
MAX_WAITING = 4096


def address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class DelayLine:
    """Sends datagrams through `send` after the delay, in order."""

    def __init__(self, loop, delay, jitter, send):
        self.loop, self.delay, self.jitter, self.send = loop, delay, jitter, send
        self.last_due = 0.0
        self.waiting = 0

    def push(self, data, to=None):
        if self.waiting >= MAX_WAITING:
            return
        now = self.loop.time()
        due = max(now + self.delay + random.uniform(0.0, self.jitter), self.last_due)
        self.last_due = due
        self.waiting += 1
        self.loop.call_at(due, self._leave, data, to)

    def _leave(self, data, to):
        self.waiting -= 1
        try:
            self.send(data, to)
        except OSError:
            pass  # the other side is gone: a lost datagram, as on a link


class Upstream(asyncio.DatagramProtocol):
    """One client's socket towards --to; answers go back to the client through the delay."""

    def __init__(self, back):
        self.back = back

    def datagram_received(self, data, _addr):
        self.back.push(data)


class Listener(asyncio.DatagramProtocol):
    def __init__(self, loop, target, delay, jitter):
        self.loop, self.target, self.delay, self.jitter = loop, target, delay, jitter
        self.clients = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, client):
        entry = self.clients.get(client)
        if entry is None:
            if len(self.clients) >= MAX_CLIENTS:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((self.target[0], 0))
            sock.setblocking(False)
            back = DelayLine(self.loop, self.delay, self.jitter, lambda d, _to, c=client: self.transport.sendto(d, c))
            entry = {"back": back}
            self.clients[client] = entry
            created = self.loop.create_datagram_endpoint(lambda: Upstream(back), sock=sock)
            entry["ready"] = asyncio.ensure_future(created)
            entry["out"] = DelayLine(self.loop, self.delay, self.jitter, lambda d, _to, e=entry: self._up(e, d))
        entry["out"].push(data)

    def _up(self, entry, data):
        ready = entry["ready"]
        if ready.done() and not ready.exception():
            ready.result()[0].sendto(data, self.target)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, required=True)
    parser.add_argument("--to", type=address, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    delay, jitter = args.delay_ms / 1000.0, args.jitter_ms / 1000.0
    await loop.create_datagram_endpoint(lambda: Listener(loop, args.to, delay, jitter), local_addr=args.listen)
    print(f"forwarding {args.listen[0]}:{args.listen[1]} -> {args.to[0]}:{args.to[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
