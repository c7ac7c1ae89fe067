"""A Warren service in Python, next to Warren's own game.

It owns one cmd, 5001 ("hello"): it answers each hello with its body and
then pushes cmd 5002 ("greeted", the MessagePack string "hello") to the
player. Players reach it through any connector, with the same routing,
limits and console as Warren's game; nothing here packs or unpacks client
frames.

The shape the design asks of a service:
  - `Deliver` (called by every gateway) only puts packets on a bounded
    queue (1024) and returns: a full queue answers RESOURCE_EXHAUSTED, and
    the player hears `overloaded`;
  - one schedule loop drains the queue and answers with `SendToPlayer` on
    the gateway that holds the player;
  - a registration with every gateway, renewed every third of its lease.

Run it (after generating the code, see docs/services.md):
  python3 service.py --gateways http://127.0.0.1:7105 --listen 127.0.0.1:7301
"""

import argparse
import queue
import random
import signal
import sys
import threading
from concurrent import futures

import grpc

import gateway_pb2 as pb
import gateway_pb2_grpc as rpc

HELLO = 5001
GREETED = 5002
# MessagePack for the string "hello".
HELLO_BODY = b"\xa5hello"


class Gateways:
    """Every gateway this service registers with, by URL and by the
    connector id each answered with."""

    def __init__(self, urls):
        self.stubs = {}
        for url in urls:
            target = url.removeprefix("http://")
            self.stubs[url] = rpc.GatewayStub(grpc.insecure_channel(target))
        self.by_connector = {}
        self.learned = threading.Condition()

    def learn(self, url, connector):
        if connector:
            with self.learned:
                self.by_connector[connector] = self.stubs[url]
                self.learned.notify_all()

    def of(self, connector):
        """The gateway named `connector`; a packet can arrive before the
        answer to the registration that names its gateway, so wait a
        moment for it."""
        with self.learned:
            self.learned.wait_for(lambda: connector in self.by_connector, timeout=1.0)
            return self.by_connector.get(connector)


class Upstream(rpc.UpstreamServicer):
    """What the gateways call: packets go on the bounded queue."""

    def __init__(self, inbox):
        self.inbox = inbox

    def Deliver(self, request, context):
        for packet in request.packets:
            if packet.kind in (pb.KIND_MESSAGE, pb.KIND_CALL) and packet.cmd == HELLO:
                try:
                    self.inbox.put_nowait(packet)
                except queue.Full:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "hello-py is full")
        return pb.DeliverReply()


def schedule(inbox, gateways):
    """Drains the queue: the reply, then a push, in one call."""
    while True:
        packet = inbox.get()
        if packet is None:
            return
        gateway = gateways.of(packet.connector)
        if gateway is None:
            print(f"no gateway named {packet.connector} yet; request dropped", file=sys.stderr)
            continue
        reply = pb.Packet(kind=pb.KIND_MESSAGE, conn=packet.conn, seq=packet.seq,
                          cmd=packet.cmd, body=packet.body)
        push = pb.Packet(kind=pb.KIND_MESSAGE, uid=packet.uid, cmd=GREETED, body=HELLO_BODY)
        try:
            gateway.SendToPlayer(pb.SendToPlayerRequest(packets=[reply, push]), timeout=2)
        except grpc.RpcError as e:
            print(f"SendToPlayer: {e.code()}: {e.details()}", file=sys.stderr)


def keep_registered(gateways, request, stop):
    """Registers with every gateway and renews every third of the lease.
    A refusal (another owner of the cmd, another shard count) is printed;
    an unreachable gateway is tried again. Refused by every gateway before
    any took it, the service exits (1), as Warren's own game does."""
    refused = {}
    taken = False
    while True:
        pause = 1.0
        for url, stub in gateways.stubs.items():
            try:
                reply = stub.Register(request, timeout=1)
                gateways.learn(url, reply.connector)
                pause = min(pause, reply.lease_ms / 3000 if reply.connector else 0.05)
                refused.pop(url, None)
                taken = True
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.ALREADY_EXISTS,
                                grpc.StatusCode.FAILED_PRECONDITION,
                                grpc.StatusCode.INVALID_ARGUMENT):
                    if refused.get(url) != e.details():
                        print(f"{url} refuses hello-py: {e.details()}", file=sys.stderr, flush=True)
                    refused[url] = e.details()
        if not taken and len(refused) == len(gateways.stubs):
            print("hello-py: refused by every gateway; exiting", file=sys.stderr, flush=True)
            return False
        if stop.wait(pause):
            break
    request.leave = True
    for stub in gateways.stubs.values():
        try:
            stub.Register(request, timeout=0.5)
        except grpc.RpcError:
            pass
    return True


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--gateways", required=True, help="every gateway URL, comma-separated")
    args.add_argument("--listen", default="127.0.0.1:7301", help="where to serve Deliver")
    args.add_argument("--shard", type=int, default=0)
    args.add_argument("--shards", type=int, default=1)
    a = args.parse_args()

    inbox = queue.Queue(maxsize=1024)
    gateways = Gateways(a.gateways.split(","))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    rpc.add_UpstreamServicer_to_server(Upstream(inbox), server)
    port = server.add_insecure_port(a.listen)
    server.start()
    host = a.listen.rsplit(":", 1)[0]
    request = pb.RegisterRequest(
        name="hello-py", address=f"http://{host}:{port}", cmds=[HELLO],
        shard=a.shard, shards=a.shards, boot=random.getrandbits(63) | 1,
        format=pb.FORMAT_PACKETS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=schedule, args=(inbox, gateways), daemon=True).start()
    print(f"hello-py: serving Deliver on {host}:{port}", flush=True)
    served = keep_registered(gateways, request, stop)
    inbox.put(None)
    server.stop(1).wait()
    if not served:
        sys.exit(1)


if __name__ == "__main__":
    main()
