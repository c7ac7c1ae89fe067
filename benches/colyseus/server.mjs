// The peer of the benchmark suite: a Colyseus 0.18 echo room. Each bot
// joins (HTTP matchmaking, then a websocket), and every bytes message of
// type 1 goes straight back to its sender. Rooms hold 500 clients; one
// Node process (Colyseus runs one process per core when scaled out with
// its own tooling; this bench runs one, like one Warren process).
// `node server.mjs [port]`
import { Server, Room } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";

class EchoRoom extends Room {
  maxClients = 500;
  maxMessagesPerSecond = Infinity;
  onCreate() {
    this.onMessageBytes(1, (client, message) => client.sendBytes(1, message));
  }
  onJoin() {}
}

const port = Number(process.argv[2] ?? 7201);
const server = new Server({ transport: new WebSocketTransport({ maxPayload: 64 * 1024 }), greet: false });
server.define("echo", EchoRoom);
await server.listen(port, "127.0.0.1");
console.log(`colyseus echo on http://127.0.0.1:${port}`);
