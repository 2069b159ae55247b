// A fake, read-only registry that serves given manifests and blobs and misbehaves on request:
// what a real registry cannot be made to do (drop connections mid-blob, lie about lengths, stall,
// redirect in circles), so the client's retry, resume, timeout and verification paths get tested.
//
//   const fake = await startFaultRegistry({ manifests: { 'library/app:v1': { bytes, mediaType } }, blobs: { [d]: blob } });
//   fake.setFaults({ rules: [{ kind: 'reset', afterBytes: 1000, times: 1 }] });  // first blob GET dies at 1000 bytes
//   fake.setFaults([{ kind: 'status', status: 429, retryAfter: 1, times: 2 }]);   // rules only: same thing
//   fake.requests.filter((r) => r.range !== undefined)                           // what the client asked
//
// Rules are tried in order; the first one that matches a request acts on it and uses up one of
// its `times` (always, without `times`; after `skip` matching requests have gone by untouched).
// Faults on the body (reset, shortBody, wrongBody, stall) only match GETs. Switches (ignoreRange,
// basicAuth, bearerNeverSucceeds) hold until the next setFaults().
//
// Blob redirects go to a second server on another port (`cdn`) serving the same bytes under
// /content/<digest>; it records whether an Authorization header followed the redirect.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type Digest, sha256 } from '../../../src/oci/digest.js';
import { closeServer, listenLocal } from './token-issuer.js';

export interface Content {
  /** Keyed `repository:reference`; a manifest given by tag is served by its digest too. */
  manifests: Record<string, { bytes: Buffer; mediaType: string }>;
  /** Served under any repository. */
  blobs: Record<Digest, Buffer>;
}

export interface RecordedRequest {
  server: 'registry' | 'cdn';
  method: string;
  /** Path without the query. */
  path: string;
  /** The query, with its '?', or ''. */
  query: string;
  headers: Record<string, string | string[] | undefined>;
  /** The Range header, if sent. */
  range: string | undefined;
  /** The Authorization header, if sent. */
  authorization: string | undefined;
}

/** Which requests a rule applies to: /v2/<name>/blobs/..., /v2/<name>/manifests/..., either, GET /v2/, anything. */
export type FaultOn = 'blobs' | 'manifests' | 'content' | 'ping' | 'all' | RegExp | ((req: RecordedRequest) => boolean);

interface RuleBase {
  /** Default 'content' ('blobs' for redirect, 'manifests' for oversizedManifest). A RegExp tests path + query. */
  on?: FaultOn;
  /** Act on this many matching requests, then stand aside. Default: every one. */
  times?: number;
  /** Let this many matching requests through first. */
  skip?: number;
}

export type FaultAction =
  /** Answer `status` (429, 503, 500, 404...), with Retry-After if given. */
  | { kind: 'status'; status: number; retryAfter?: number | string; headers?: Record<string, string>; body?: string }
  /** Close the connection (TCP RST) before any response. */
  | { kind: 'drop' }
  /** Send headers (full Content-Length) and `afterBytes` of the body, then reset the connection (RST). */
  | { kind: 'reset'; afterBytes: number }
  /** Send headers (full Content-Length) and `sendBytes` of the body, then close cleanly (FIN). */
  | { kind: 'shortBody'; sendBytes: number }
  /** Same length, different bytes: a digest mismatch. */
  | { kind: 'wrongBody' }
  /** Send `afterBytes`, then nothing for `ms` (default: until stop()), then the rest. */
  | { kind: 'stall'; afterBytes: number; ms?: number }
  /** Redirect (default 307) to the cdn server, which serves the same bytes. */
  | { kind: 'redirect'; status?: 301 | 302 | 303 | 307 | 308 }
  /** Redirect (default 302) into /_loop/a → /_loop/b → /_loop/a → ... */
  | { kind: 'redirectLoop'; status?: 301 | 302 | 303 | 307 | 308 }
  /** A manifest body of `bytes` (default 10 MiB) of valid-looking JSON; `chunked` leaves out Content-Length. */
  | { kind: 'oversizedManifest'; bytes?: number; chunked?: boolean };

export type FaultRule = RuleBase & FaultAction;

export interface Faults {
  rules?: FaultRule[];
  /** Answer 200 with the whole body even when a Range is asked for (registries that do not do ranges). */
  ignoreRange?: boolean;
  /** 401 `WWW-Authenticate: Basic realm=...` for every request without exactly these credentials. */
  basicAuth?: { username: string; password: string; realm?: string };
  /** 401 with a Bearer challenge (realm: this server's /token) whatever token comes back. */
  bearerNeverSucceeds?: boolean;
}

export interface FaultRegistry {
  /** '127.0.0.1:PORT' */
  host: string;
  /** 'http://127.0.0.1:PORT' */
  url: string;
  /** Requests to both servers, in arrival order. */
  requests: RecordedRequest[];
  /** The redirect target. */
  cdn: { url: string; requests: RecordedRequest[] };
  setFaults(faults: Faults | FaultRule[]): void;
  setContent(content: Content): void;
  stop(): Promise<void>;
}

export const OVERSIZED_MANIFEST_BYTES = 10 * 1024 * 1024;

const BODY_FAULTS = new Set<FaultAction['kind']>(['reset', 'shortBody', 'wrongBody', 'stall']);

type Route =
  | { kind: 'ping' }
  | { kind: 'manifests'; name: string; reference: string }
  | { kind: 'blobs'; name: string; digest: string }
  | { kind: 'token' }
  | { kind: 'loop'; hop: string }
  | { kind: 'other' };

function route(path: string): Route {
  if (path === '/v2/' || path === '/v2') return { kind: 'ping' };
  if (path === '/token') return { kind: 'token' };
  const loop = /^\/_loop\/([ab])$/.exec(path);
  if (loop) return { kind: 'loop', hop: loop[1]! };
  const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
  if (m?.[2] === 'manifests') return { kind: 'manifests', name: m[1]!, reference: decodeURIComponent(m[3]!) };
  if (m?.[2] === 'blobs') return { kind: 'blobs', name: m[1]!, digest: decodeURIComponent(m[3]!) };
  return { kind: 'other' };
}

function recordOf(server: RecordedRequest['server'], req: IncomingMessage): RecordedRequest {
  const url = new URL(req.url ?? '/', 'http://localhost');
  return {
    server,
    method: req.method ?? '',
    path: url.pathname,
    query: url.search,
    headers: { ...req.headers },
    range: req.headers.range,
    authorization: req.headers.authorization,
  };
}

function matches(on: FaultOn, r: RecordedRequest, kind: Route['kind']): boolean {
  if (typeof on === 'function') return on(r);
  if (on instanceof RegExp) return on.test(r.path + r.query);
  if (on === 'all') return true;
  if (on === 'content') return kind === 'blobs' || kind === 'manifests';
  return on === kind;
}

function defaultOn(action: FaultAction): FaultOn {
  if (action.kind === 'redirect') return 'blobs';
  if (action.kind === 'oversizedManifest') return 'manifests';
  return 'content';
}

/** A rule with its remaining budget, so `times`/`skip` count per setFaults(). */
interface LiveRule {
  rule: FaultRule;
  skip: number;
  left: number;
}

function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(JSON.stringify({ errors: [{ code, message }] }));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length, ...headers });
  res.end(body);
}

/** `bytes=N-` or `bytes=N-M` → the slice to send; 'unsatisfiable' past the end; undefined for none/other forms. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (m === null) return undefined;
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

interface Body {
  bytes: Buffer;
  contentType: string;
  digest: string;
}

/** Writes `body` (honouring Range unless told not to) with an optional body fault. */
function serveBody(
  req: IncomingMessage,
  res: ServerResponse,
  body: Body,
  opts: { ranges: boolean; fault?: FaultAction; timers: Set<NodeJS.Timeout> },
): void {
  const headers: Record<string, string | number> = { 'Content-Type': body.contentType, 'Docker-Content-Digest': body.digest };
  if (opts.ranges) headers['Accept-Ranges'] = 'bytes';
  let status = 200;
  let bytes = body.bytes;
  const range = opts.ranges ? parseRange(req.headers.range, bytes.length) : undefined;
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}`, 'Content-Length': 0 });
    res.end();
    return;
  }
  if (range !== undefined) {
    status = 206;
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${bytes.length}`;
    bytes = bytes.subarray(range.start, range.end + 1);
  }
  headers['Content-Length'] = bytes.length;
  res.writeHead(status, headers);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  sendWithFault(res, bytes, opts.fault, opts.timers);
}

function sendWithFault(res: ServerResponse, bytes: Buffer, fault: FaultAction | undefined, timers: Set<NodeJS.Timeout>): void {
  const socket = res.socket;
  switch (fault?.kind) {
    case 'reset':
      // Let the partial body reach the peer before the RST, which would otherwise discard it.
      res.write(bytes.subarray(0, fault.afterBytes), () => {
        const t = setTimeout(() => {
          timers.delete(t);
          socket?.resetAndDestroy();
        }, 20);
        timers.add(t);
      });
      return;
    case 'shortBody':
      res.write(bytes.subarray(0, fault.sendBytes), () => socket?.end());
      return;
    case 'wrongBody': {
      const wrong = Buffer.from(bytes);
      for (let i = 0; i < wrong.length; i += 512) wrong[i] = wrong[i]! ^ 0xff;
      res.end(wrong);
      return;
    }
    case 'stall': {
      res.write(bytes.subarray(0, fault.afterBytes));
      if (fault.ms === undefined) return; // hangs until the client gives up or stop() closes it
      const t = setTimeout(() => {
        timers.delete(t);
        res.end(bytes.subarray(fault.afterBytes));
      }, fault.ms);
      timers.add(t);
      return;
    }
    default:
      res.end(bytes);
  }
}

/** A JSON object of about `size` bytes that starts like a manifest. */
function oversizedManifest(size: number): Buffer {
  const head = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"padding":"';
  const tail = '"}}';
  return Buffer.from(head + 'x'.repeat(Math.max(0, size - head.length - tail.length)) + tail);
}

export async function startFaultRegistry(content: Content, faults?: Faults | FaultRule[]): Promise<FaultRegistry> {
  const requests: RecordedRequest[] = [];
  const cdnRequests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let manifests = new Map<string, { bytes: Buffer; mediaType: string; digest: Digest }>();
  let blobs = new Map<string, Buffer>();
  let switches: Omit<Faults, 'rules'> = {};
  let rules: LiveRule[] = [];

  const setContent = (c: Content): void => {
    manifests = new Map();
    for (const [key, m] of Object.entries(c.manifests)) {
      const colon = key.indexOf(':');
      if (colon <= 0) throw new Error(`fault registry: manifest key ${JSON.stringify(key)} is not repository:reference`);
      const digest = sha256(m.bytes);
      manifests.set(key, { ...m, digest });
      manifests.set(`${key.slice(0, colon)}:${digest}`, { ...m, digest });
    }
    blobs = new Map(Object.entries(c.blobs));
  };
  const setFaults = (f: Faults | FaultRule[]): void => {
    const { rules: list = [], ...rest } = Array.isArray(f) ? { rules: f } : f;
    switches = rest;
    rules = list.map((rule) => ({ rule, skip: rule.skip ?? 0, left: rule.times ?? Infinity }));
  };
  setContent(content);
  setFaults(faults ?? {});

  /** The first rule matching this request, its budget spent. */
  const takeRule = (r: RecordedRequest, kind: Route['kind']): FaultRule | undefined => {
    for (const live of rules) {
      if (live.left <= 0) continue;
      if (BODY_FAULTS.has(live.rule.kind) && r.method !== 'GET') continue;
      if (!matches(live.rule.on ?? defaultOn(live.rule), r, kind)) continue;
      if (live.skip > 0) {
        live.skip--;
        continue;
      }
      live.left--;
      return live.rule;
    }
    return undefined;
  };

  /** Answers the auth switches; true when the request was turned away. */
  const refuseAuth = (req: IncomingMessage, res: ServerResponse, r: Route): boolean => {
    const basic = switches.basicAuth;
    if (basic !== undefined) {
      const expected = `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}`;
      if (req.headers.authorization === expected) return false;
      sendError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'WWW-Authenticate': `Basic realm="${basic.realm ?? 'fault-registry'}"` });
      return true;
    }
    if (switches.bearerNeverSucceeds === true) {
      const scope = r.kind === 'manifests' || r.kind === 'blobs' ? `,scope="repository:${r.name}:pull"` : '';
      const error = req.headers.authorization?.startsWith('Bearer ') ? ',error="invalid_token"' : '';
      sendError(res, 401, 'UNAUTHORIZED', 'authentication required', {
        'WWW-Authenticate': `Bearer realm="${url}/token",service="fault-registry"${scope}${error}`,
      });
      return true;
    }
    return false;
  };

  const serveManifest = (req: IncomingMessage, res: ServerResponse, r: { name: string; reference: string }, fault: FaultAction | undefined): void => {
    if (fault?.kind === 'oversizedManifest') {
      const bytes = oversizedManifest(fault.bytes ?? OVERSIZED_MANIFEST_BYTES);
      res.writeHead(200, {
        'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
        'Docker-Content-Digest': sha256(bytes),
        ...(fault.chunked === true ? {} : { 'Content-Length': bytes.length }),
      });
      res.end(req.method === 'HEAD' ? undefined : bytes);
      return;
    }
    const m = manifests.get(`${r.name}:${r.reference}`);
    if (m === undefined) return sendError(res, 404, 'MANIFEST_UNKNOWN', `manifest unknown: ${r.name}:${r.reference}`);
    serveBody(req, res, { bytes: m.bytes, contentType: m.mediaType, digest: m.digest }, { ranges: false, fault, timers });
  };

  const serveBlob = (req: IncomingMessage, res: ServerResponse, digest: string, fault: FaultAction | undefined): void => {
    const blob = blobs.get(digest);
    if (blob === undefined) return sendError(res, 404, 'BLOB_UNKNOWN', `blob unknown: ${digest}`);
    serveBody(req, res, { bytes: blob, contentType: 'application/octet-stream', digest }, { ranges: switches.ignoreRange !== true, fault, timers });
  };

  /** Faults that replace the response outright; true when one did. */
  const answerFault = (res: ServerResponse, r: Route, fault: FaultAction): boolean => {
    switch (fault.kind) {
      case 'status': {
        const headers: Record<string, string> = { ...fault.headers };
        if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
        const body = Buffer.from(fault.body ?? JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected ${fault.status}` }] }));
        res.writeHead(fault.status, { 'Content-Type': 'application/json', 'Content-Length': body.length, ...headers });
        res.end(body);
        return true;
      }
      case 'drop':
        res.socket?.resetAndDestroy();
        return true;
      case 'redirect': {
        const digest = r.kind === 'blobs' ? r.digest : r.kind === 'manifests' ? manifests.get(`${r.name}:${r.reference}`)?.digest : undefined;
        if (digest === undefined) return false; // nothing to redirect to: answer normally (404)
        res.writeHead(fault.status ?? 307, { Location: `${cdnUrl}/content/${digest}?signature=fault-registry`, 'Content-Length': 0 });
        res.end();
        return true;
      }
      case 'redirectLoop':
        res.writeHead(fault.status ?? 302, { Location: '/_loop/a', 'Content-Length': 0 });
        res.end();
        return true;
      default:
        return false;
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const record = recordOf('registry', req);
    requests.push(record);
    const r = route(record.path);
    if (r.kind === 'loop') {
      res.writeHead(302, { Location: `/_loop/${r.hop === 'a' ? 'b' : 'a'}`, 'Content-Length': 0 });
      return void res.end();
    }
    if (r.kind === 'token') {
      // Tokens for bearerNeverSucceeds: accepted by nobody.
      const body = Buffer.from(JSON.stringify({ token: 'never-valid', access_token: 'never-valid', expires_in: 300 }));
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
      return void res.end(body);
    }
    if (refuseAuth(req, res, r)) return;
    const fault = takeRule(record, r.kind);
    if (fault !== undefined && answerFault(res, r, fault)) return;
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'UNSUPPORTED', 'this registry is read-only');
    if (r.kind === 'ping') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 });
      return void res.end('{}');
    }
    if (r.kind === 'manifests') return serveManifest(req, res, r, fault);
    if (r.kind === 'blobs') return serveBlob(req, res, r.digest, fault);
    sendError(res, 404, 'NOT_FOUND', `no route for ${record.path}`);
  };

  /** The redirect target: /content/<digest> for blobs and manifests alike, ranges honoured. */
  const handleCdn = (req: IncomingMessage, res: ServerResponse): void => {
    const record = recordOf('cdn', req);
    requests.push(record);
    cdnRequests.push(record);
    const m = /^\/content\/(sha256:[a-f0-9]{64})$/.exec(record.path);
    const digest = m?.[1];
    const bytes = digest === undefined ? undefined : (blobs.get(digest) ?? [...manifests.values()].find((x) => x.digest === digest)?.bytes);
    if (digest === undefined || bytes === undefined) return sendError(res, 404, 'BLOB_UNKNOWN', `no content at ${record.path}`);
    serveBody(req, res, { bytes, contentType: 'application/octet-stream', digest }, { ranges: true, timers });
  };

  const server = createServer(handle);
  const cdn = createServer(handleCdn);
  const url = `http://127.0.0.1:${await listenLocal(server)}`;
  const cdnUrl = `http://127.0.0.1:${await listenLocal(cdn)}`;

  return {
    host: url.slice('http://'.length),
    url,
    requests,
    cdn: { url: cdnUrl, requests: cdnRequests },
    setFaults,
    setContent,
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all([closeServer(server), closeServer(cdn)]);
    },
  };
}
