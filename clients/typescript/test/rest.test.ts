/** The client through Envoy's REST with fetch (the dependency-free entry point). */

import { RestClient } from "../src/rest.js";
import { servers } from "./support.js";
import { eventsSuite } from "./events_suite.js";
import { clientSuite, type Door } from "./suite.js";

const { envoy, shortTtlEnvoy } = servers();

const door: Door = {
  name: "REST",
  make: (options, address = envoy) => new RestClient({ ...options, baseUrl: address }),
  address: envoy,
  hostPort: new URL(envoy).host,
  shortTtlAddress: shortTtlEnvoy,
  viaProxy: (proxy) => `http://${proxy}`,
};

clientSuite(door);
eventsSuite(door);
