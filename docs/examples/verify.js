// Verify oxoflow-notify webhook signatures in Node.js. No dependencies: copy this file.
//
//   const { verifyHub, verifyStandard } = require("./verify");
//   // rawBody: the request body as a Buffer, exactly as received (before JSON.parse)
//   if (!verifyHub(process.env.SECRET, rawBody, req.headers["x-hub-signature-256"])) return res.sendStatus(401);
//   if (!verifyStandard(["whsec_..."], req.headers, rawBody)) return res.sendStatus(401);
"use strict";
const crypto = require("crypto");

const TOLERANCE_SECONDS = 300;

function safeEqual(a, b) {
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256(secret as UTF-8, body)
function verifyHub(secret, rawBody, header) {
  if (!header) return false;
  const expected = "sha256=" + crypto.createHmac("sha256", secret).update(rawBody).digest("hex");
  return safeEqual(expected, String(header).trim());
}

// Standard Webhooks: webhook-signature lists "v1,<base64>" entries, each HMAC-SHA256 keyed with the
// base64 after "whsec_", over "<webhook-id>.<webhook-timestamp>.<body>". Rejects stale timestamps.
function verifyStandard(secrets, headers, rawBody, options = {}) {
  const get = (name) => {
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
    return undefined;
  };
  const id = get("webhook-id"), timestamp = get("webhook-timestamp"), signatures = get("webhook-signature");
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return false;
  const now = options.now !== undefined ? options.now : Date.now() / 1000;
  if (Math.abs(now - Number(timestamp)) > (options.tolerance || TOLERANCE_SECONDS)) return false;
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), Buffer.from(rawBody)]);
  const candidates = signatures.split(" ").filter((s) => s.startsWith("v1,"));
  for (const secret of Array.isArray(secrets) ? secrets : [secrets]) {
    const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
    const expected = "v1," + crypto.createHmac("sha256", key).update(signed).digest("base64");
    if (candidates.some((c) => safeEqual(expected, c))) return true;
  }
  return false;
}

module.exports = { verifyHub, verifyStandard };
