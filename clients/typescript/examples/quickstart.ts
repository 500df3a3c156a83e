import { Client, InvalidArgument } from "@formation/mcp-client";

// FMCP_TARGET and FMCP_KEY_FILE, as the fmcp CLI reads them.
const client = new Client({
  target: process.env["FMCP_TARGET"] ?? "127.0.0.1:50051",
  keyFile: process.env["FMCP_KEY_FILE"] ?? "~/.config/fmcp/key.pem",
});
try {
  console.log("logged in as", (await client.whoami()).name);
  const tools = await client.tools.list('category = "test"');
  console.log("tools:", tools.map((tool) => tool.name).join(", "));

  // A long-running call, followed to the end: every change, then the tool's output.
  const output = await client.callAndWait("test.sleep", { steps: 3, delay_ms: 200 }, {
    onProgress: (op) => console.log(`[${op.metadata.progressPercent}%] ${op.metadata.state}`),
  });
  console.log("result:", JSON.stringify(output));

  // Errors are one class per gRPC code, with the server's details.
  try {
    await client.tools.call("test.echo", { text: "hi", count: 99 });
  } catch (error) {
    if (!(error instanceof InvalidArgument)) throw error;
    console.log(error.reason, error.fieldViolations.map((v) => `${v.field}: ${v.description}`));
  }
} finally {
  await client.close();
}
