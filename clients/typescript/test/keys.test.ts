/** Ed25519 keys with Node's crypto: PEM as `fmcp keygen` writes it, the raw seed, signing. */

import assert from "node:assert/strict";
import { generateKeyPairSync, verify } from "node:crypto";
import { test } from "node:test";

import { loadKey, publicKeyBytes, signMessage } from "../src/rest.js";

test("PEM text, PEM bytes and the raw seed load the same key", () => {
  const { privateKey } = generateKeyPairSync("ed25519");
  const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  const seed = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32));
  const expected = publicKeyBytes(privateKey);
  assert.equal(expected.length, 32);
  for (const form of [pem, new TextEncoder().encode(pem), seed]) {
    assert.deepEqual(publicKeyBytes(loadKey(form)), expected);
  }
});

test("a signature is the message's, exactly as given", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const message = new TextEncoder().encode("formation-mcp-login-v1\nnonce");
  const signature = signMessage(privateKey, message);
  assert.equal(signature.length, 64);
  assert.ok(verify(null, message, publicKey, signature));
});

test("a key that is not Ed25519 is refused", () => {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  assert.throws(() => loadKey(privateKey.export({ format: "pem", type: "pkcs8" }).toString()), TypeError);
});
