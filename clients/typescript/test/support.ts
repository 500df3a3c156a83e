/**
 * What the tests share: the servers the harness started (tests/typescript/ in the Python
 * suite runs `fmcp serve`, a worker, Envoy, and then `npm test` with their addresses in the
 * environment), fresh keys, a TCP proxy that can drop its connections, and `eventually`.
 */

import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { createServer, connect, type Server, type Socket } from "node:net";

/** The environment variables the harness sets. */
export interface Servers {
  /** `fmcp serve` over gRPC (`127.0.0.1:PORT`), with RabbitMQ and a separate worker. */
  readonly grpc: string;
  /** Envoy in front of it (`http://127.0.0.1:PORT`). */
  readonly envoy: string;
  /** A key file written by `fmcp keygen`, and the key id it printed. */
  readonly keyFile: string;
  readonly keyId: string;
  /** A second server whose access tokens live 1 s, over gRPC and through its Envoy. */
  readonly shortTtlGrpc: string;
  readonly shortTtlEnvoy: string;
}

export function servers(): Servers {
  const read = (name: string): string => {
    const value = process.env[name];
    if (!value) {
      throw new Error(
        `${name} is not set: these tests run against real servers that ` +
          "tests/typescript/test_typescript_client.py starts (make test, or pytest tests/typescript)",
      );
    }
    return value;
  };
  return {
    grpc: read("FMCP_TS_GRPC"),
    envoy: read("FMCP_TS_ENVOY"),
    keyFile: read("FMCP_TS_KEY_FILE"),
    keyId: read("FMCP_TS_KEY_ID"),
    shortTtlGrpc: read("FMCP_TS_SHORT_TTL_GRPC"),
    shortTtlEnvoy: read("FMCP_TS_SHORT_TTL_ENVOY"),
  };
}

/** A fresh Ed25519 key: every test is its own account (open sign-up). */
export function newKey(): KeyObject {
  return generateKeyPairSync("ed25519").privateKey;
}

/** Waits until `check` returns a value (not undefined) or throws past the deadline. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  deadlineMs = 20_000,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > end) {
      throw new Error(`not within ${deadlineMs} ms: ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A TCP proxy on a free loopback port to `upstream` (`host:port`); `drop()` destroys every
 * connection it carries, as a network failure would, and it keeps accepting new ones. */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  /** Connections accepted so far. */
  connections = 0;

  private constructor(
    private readonly server: Server,
    readonly address: string,
  ) {}

  static async start(upstream: string): Promise<TcpProxy> {
    const [host, port] = splitAddress(upstream);
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => {
      const upstreamSocket = connect(port, host);
      proxy?.track(client, upstreamSocket);
      client.pipe(upstreamSocket);
      upstreamSocket.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const bound = server.address();
    if (bound === null || typeof bound === "string") {
      throw new Error("the proxy has no port");
    }
    proxy = new TcpProxy(server, `127.0.0.1:${bound.port}`);
    return proxy;
  }

  drop(): void {
    for (const socket of this.sockets) {
      socket.resetAndDestroy();
    }
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.drop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(...sockets: Socket[]): void {
    this.connections += 1;
    for (const socket of sockets) {
      this.sockets.add(socket);
      socket.on("error", () => undefined); // a reset is what we asked for
      socket.on("close", () => {
        this.sockets.delete(socket);
        for (const other of sockets) {
          other.destroy();
        }
      });
    }
  }
}

function splitAddress(address: string): [string, number] {
  const url = new URL(address.includes("://") ? address : `tcp://${address}`);
  return [url.hostname, Number(url.port)];
}
