// Shared helpers for the JavaScript clients the integration tests drive.
//
// Each script takes one JSON argument (the spec) and prints one JSON line:
//   {"ok": true, "MessageId": ..., "output": {...}, "httpStatusCode": N, "sent": [...]}
//   {"ok": false, "name": ..., "code": ..., "httpStatusCode": N, "message": ..., "sent": [...]}
// and exits 0; a non-zero exit means the script itself failed.
//
// Spec fields: endpoint, region, maxAttempts (default 1), clockOffsetMs
// (systemClockOffset), fault ("tamper": change one body byte after signing;
// "noauth": drop the Authorization header after signing), repeat (run the
// command that many times with the same client; the output is the last
// call's, with "results" listing every call). Credentials come from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment.

// The spec given as the first command-line argument.
export function readSpec() {
  if (process.argv.length < 3) {
    throw new Error('usage: node SCRIPT.mjs SPEC_JSON');
  }
  return JSON.parse(process.argv[2]);
}

// Replace every {"$b64": "..."} in v with the decoded bytes.
export function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === 'object') {
    if (typeof v.$b64 === 'string' && Object.keys(v).length === 1) {
      return new Uint8Array(Buffer.from(v.$b64, 'base64'));
    }
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = revive(x);
    return out;
  }
  return v;
}

// Client configuration for an SES or SESv2 client from the spec.
export function clientConfig(spec) {
  const cfg = {
    region: spec.region || 'us-east-1',
    endpoint: spec.endpoint,
    maxAttempts: spec.maxAttempts ?? 1,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || '',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || '',
    },
  };
  if (spec.clockOffsetMs) cfg.systemClockOffset = spec.clockOffsetMs;
  return cfg;
}

// The bytes of an HTTP request body.
function bodyBytes(body) {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  // A view on the same memory: Buffer.from(typedArray) would call valueOf(),
  // which the SDK's JSON body class maps to a string conversion.
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new Error('unexpected body type ' + typeof body);
}

// body with its last ASCII letter changed to another letter (same length).
export function tamperBody(body) {
  const b = Buffer.from(bodyBytes(body));
  for (let i = b.length - 1; i >= 0; i--) {
    const c = b[i];
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) {
      b[i] = c === 0x78 || c === 0x58 ? c + 1 : (c & 0x20) | 0x58;
      return typeof body === 'string' ? b.toString('utf8') : new Uint8Array(b);
    }
  }
  throw new Error('no letter to tamper with in the body');
}

// Add a middleware that runs after signing: it applies spec.fault and
// records every request sent (one per attempt) into sent.
export function instrument(client, spec, sent) {
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request;
      if (req && req.headers) {
        if (spec.fault === 'tamper') req.body = tamperBody(req.body);
        if (spec.fault === 'noauth') {
          for (const h of Object.keys(req.headers)) {
            if (h.toLowerCase() === 'authorization') delete req.headers[h];
          }
        }
        const qs = new URLSearchParams();
        for (const [k, v] of Object.entries(req.query || {})) {
          for (const x of [].concat(v)) qs.append(k, x ?? '');
        }
        sent.push({
          method: req.method,
          path: req.path,
          query: qs.toString(),
          headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v])),
          body_b64: bodyBytes(req.body).toString('base64'),
        });
      }
      return next(args);
    },
    { step: 'deserialize', name: 'sesgateTestInstrument', priority: 'low' },
  );
}

// The result of a successful call.
export function okResult(output, extra = {}) {
  const { $metadata, ...rest } = output || {};
  return {
    ok: true,
    MessageId: rest.MessageId ?? null,
    httpStatusCode: $metadata ? $metadata.httpStatusCode : null,
    attempts: $metadata ? $metadata.attempts : null,
    output: rest,
    ...extra,
  };
}

// The result of a failed call.
export function errorResult(err) {
  const md = err && err.$metadata ? err.$metadata : {};
  return {
    ok: false,
    name: err && err.name,
    code: (err && (err.Code || err.code)) ?? null,
    type: (err && err.Type) ?? null,
    fault: (err && err.$fault) ?? null,
    httpStatusCode: md.httpStatusCode ?? null,
    attempts: md.attempts ?? null,
    message: err && err.message,
  };
}

// Run call() spec.repeat times (default once) and print the last result,
// every result and the requests sent.
export async function runAndPrint(spec, sent, call) {
  const results = [];
  for (let i = 0; i < (spec.repeat || 1); i++) {
    try {
      results.push(await call());
    } catch (err) {
      results.push(errorResult(err));
    }
  }
  const last = results[results.length - 1];
  process.stdout.write(JSON.stringify({ ...last, results, sent }) + '\n');
}
