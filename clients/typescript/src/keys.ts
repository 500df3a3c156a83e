/**
 * Ed25519 keys with Node's own `crypto`: the PEM files `fmcp keygen` writes (PKCS #8,
 * `-----BEGIN PRIVATE KEY-----`), the raw 32-byte public key the API takes, and signing a
 * login challenge. No runtime dependency.
 */

import { createPrivateKey, createPublicKey, sign, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";

/** A private key from a `KeyObject` or PEM text; throws unless it is Ed25519. */
export function loadKey(key: KeyObject | string | Uint8Array): KeyObject {
  const object =
    typeof key === "string" || key instanceof Uint8Array ? createPrivateKey({ key: Buffer.from(key), format: "pem" }) : key;
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
