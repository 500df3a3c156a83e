/** The client over gRPC (generated stubs, connect-node), straight to `fmcp serve`. */

import { Client } from "../src/index.js";
import { servers } from "./support.js";
import { clientSuite } from "./suite.js";

const { grpc, shortTtlGrpc } = servers();

clientSuite({
  name: "gRPC",
  make: (options, address = grpc) => new Client({ ...options, target: address }),
  address: grpc,
  hostPort: grpc,
  shortTtlAddress: shortTtlGrpc,
  viaProxy: (proxy) => proxy,
});
