/** The client over gRPC (generated stubs, connect-node), straight to `fmcp serve`. */

import { Client } from "../src/index.js";
import { servers } from "./support.js";
import { eventsSuite } from "./events_suite.js";
import { clientSuite, type Door } from "./suite.js";

const { grpc, shortTtlGrpc } = servers();

const door: Door = {
  name: "gRPC",
  make: (options, address = grpc) => new Client({ ...options, target: address }),
  address: grpc,
  hostPort: grpc,
  shortTtlAddress: shortTtlGrpc,
  viaProxy: (proxy) => proxy,
};

clientSuite(door);
eventsSuite(door);
