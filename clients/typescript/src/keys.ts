/**
 * Ed25519 keys with Node's own `crypto`: the PEM files `fmcp keygen` writes (PKCS #8,
 * `-----BEGIN PRIVATE KEY-----`), the raw 32-byte public key the API takes, and signing a
 * login challenge. No runtime dependency.
 */

import { createPrivateKey, createPublicKey, sign, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";

/** PKCS #8 DER of an Ed25519 private key, up to its 32-byte seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** A private key from a `KeyObject`, PEM (text or bytes) or the 32-byte seed; throws unless
 * it is Ed25519. */
export function loadKey(key: KeyObject | string | Uint8Array): KeyObject {
  let object: KeyObject;
  if (typeof key === "string") {
    object = createPrivateKey({ key, format: "pem" });
  } else if (key instanceof Uint8Array && key.length === 32) {
    object = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, key]), format: "der", type: "pkcs8" });
  } else if (key instanceof Uint8Array) {
    object = createPrivateKey({ key: Buffer.from(key), format: "pem" });
  } else {
    object = key;
  }
  if (object.type !== "private" || object.asymmetricKeyType !== "ed25519") {
    throw new TypeError("not an Ed25519 private key");
  }
  return object;
}

/** The private key in a PEM file (`~` expands to the home directory). */
export function loadKeyFile(path: string): KeyObject {
  const expanded = path === "~" || path.startsWith("~/") ? homedir() + path.slice(1) : path;
  return loadKey(readFileSync(expanded, "utf8"));
}

/** `FMCP_KEY` (the PEM text itself) or `FMCP_KEY_FILE` (a path), as the CLI reads them. */
export function keyFromEnv(env: NodeJS.ProcessEnv = process.env): KeyObject | undefined {
  if (env["FMCP_KEY"]) {
    return loadKey(env["FMCP_KEY"]);
  }
  if (env["FMCP_KEY_FILE"]) {
    return loadKeyFile(env["FMCP_KEY_FILE"]);
  }
  return undefined;
}

/** The raw 32-byte public key (the last 32 bytes of its SubjectPublicKeyInfo DER). */
export function publicKeyBytes(key: KeyObject): Uint8Array {
  const der = createPublicKey(key).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** The Ed25519 signature of `message`, exactly as given. */
export function signMessage(key: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, key));
}
