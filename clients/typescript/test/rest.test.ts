/** The client through Envoy's REST with fetch (the dependency-free entry point). */

import { RestClient } from "../src/rest.js";
import { servers } from "./support.js";
import { clientSuite } from "./suite.js";

const { envoy, shortTtlEnvoy } = servers();

clientSuite({
  name: "REST",
  make: (options, address = envoy) => new RestClient({ ...options, baseUrl: address }),
  address: envoy,
  hostPort: new URL(envoy).host,
  shortTtlAddress: shortTtlEnvoy,
  viaProxy: (proxy) => `http://${proxy}`,
});
