#!/usr/bin/env python3
"""A UDP forwarder that adds delay and jitter, for the network bench (this kernel has no netem).

    benches/network/udp-delay.py --listen 127.0.0.1:3479 --to 127.0.0.1:3478 --delay-ms 20 --jitter-ms 10 \
        [--media-loss 0.05]

Every datagram a client sends to --listen leaves for --to from a socket of that client's own (as a NAT would give
it), and every answer goes back to the client: each way after --delay-ms plus a uniformly random 0..--jitter-ms.
Order is kept per direction (a packet never overtakes the one before it, as on one link) unless --reorder is
given (then each datagram leaves at its own due time, and one with less jitter overtakes, as with netem's jitter).
The bench puts it in front of coturn and makes both peers relay-only, so the whole media path is delayed (twice
each way: sender to coturn, coturn to receiver). --media-loss drops that share of the media at random, once per
direction (on coturn's way to the receiver):
TURN ChannelData messages whose payload is RTP or RTCP (first byte's top bits 10), as the bench's other loss
scenarios drop SRTP/SRTCP only.
Bounded: at most 256 clients and 4,096 datagrams waiting per direction; beyond that a datagram is dropped.
"""
import argparse
import asyncio
import heapq
import random
import socket
import struct

MAX_CLIENTS = 256
MAX_WAITING = 4096


def address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def is_relayed_media(data):
    """Whether `data` is a TURN ChannelData message (channel 0x4000-0x7FFF) carrying RTP or RTCP."""
    if len(data) < 5:
        return False
    channel, _length = struct.unpack_from("!HH", data)
    return 0x4000 <= channel <= 0x7FFF and data[4] & 0xC0 == 0x80


class DelayLine:
    """Sends datagrams through `send` after the delay, dropping relayed media at `loss`: in order, or, with
    `reorder`, each at its own due time (a datagram whose jitter is shorter overtakes, as with netem's jitter).

    A heap keyed by (due, arrival) and one timer for its head: a timer per datagram would not even keep equal due
    times in order, since asyncio's timer heap does not.
    """

    def __init__(self, loop, delay, jitter, loss, reorder, send):
        self.loop, self.delay, self.jitter, self.loss, self.reorder, self.send = loop, delay, jitter, loss, reorder, send
        self.heap = []
        self.arrivals = 0
        self.last_due = 0.0
        self.timer = None

    def push(self, data, to=None):
        if len(self.heap) >= MAX_WAITING:
            return
        if self.loss and is_relayed_media(data) and random.random() < self.loss:
            return
        due = self.loop.time() + self.delay + random.uniform(0.0, self.jitter)
        if not self.reorder:
            due = max(due, self.last_due)
        self.last_due = due
        self.arrivals += 1
        heapq.heappush(self.heap, (due, self.arrivals, data, to))
        if self.heap[0][1] == self.arrivals:  # a new head: wake for it
            if self.timer:
                self.timer.cancel()
            self.timer = self.loop.call_at(due, self._leave)

    def _leave(self):
        self.timer = None
        now = self.loop.time()
        while self.heap and self.heap[0][0] <= now:
            _, _, data, to = heapq.heappop(self.heap)
            try:
                self.send(data, to)
            except OSError:
                pass  # the other side is gone: a lost datagram, as on a link
        if self.heap:
            self.timer = self.loop.call_at(self.heap[0][0], self._leave)


class Upstream(asyncio.DatagramProtocol):
    """One client's socket towards --to; answers go back to the client through the delay."""

    def __init__(self, back):
        self.back = back

    def datagram_received(self, data, _addr):
        self.back.push(data)


class Listener(asyncio.DatagramProtocol):
    def __init__(self, loop, target, delay, jitter, loss, reorder):
        self.loop, self.target, self.delay, self.jitter, self.loss, self.reorder = loop, target, delay, jitter, loss, reorder
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
            back = DelayLine(
                self.loop,
                self.delay,
                self.jitter,
                self.loss,
                self.reorder,
                lambda d, _to, c=client: self.transport.sendto(d, c),
            )
            entry = {"back": back}
            self.clients[client] = entry
            created = self.loop.create_datagram_endpoint(lambda: Upstream(back), sock=sock)
            entry["ready"] = asyncio.ensure_future(created)
            # Loss on the way back only: every relayed packet takes exactly one way back (coturn to its receiver).
            entry["out"] = DelayLine(
                self.loop, self.delay, self.jitter, 0.0, self.reorder, lambda d, _to, e=entry: self._up(e, d)
            )
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
    parser.add_argument("--media-loss", type=float, default=0.0)
    parser.add_argument("--reorder", action="store_true", help="let a datagram with less jitter overtake")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    delay, jitter = args.delay_ms / 1000.0, args.jitter_ms / 1000.0
    await loop.create_datagram_endpoint(
        lambda: Listener(loop, args.to, delay, jitter, args.media_loss, args.reorder), local_addr=args.listen
    )
    print(f"forwarding {args.listen[0]}:{args.listen[1]} -> {args.to[0]}:{args.to[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
