/**
 * JSONSocket v1 wire format (l7mp `doc/jsonsocket-spec.org`; docs/l7mp-compat.md §5): the first
 * message of each side is a UTF-8 JSON object carrying `"JSONSocketVersion": 1`; after the
 * handshake the stream carries raw payload. On datagram transports a header is one message; on
 * byte streams it is the first complete JSON object (found by {@link jsonObjectEnd}), and the bytes
 * after it are payload. Pure functions, no I/O.
 */
import http from 'node:http';
import { getAtPath, setAtPath } from '../../routing/paths.ts';

/** The only version this implementation speaks. */
export const JSONSOCKET_VERSION = 1;

/** Largest header accepted on a byte stream before the peer is told 400. Unit: bytes. */
export const MAX_HEADER_BYTES = 65536;

/** A header the server accepted, or the reply that rejects it. */
export type RequestCheck = { ok: true; header: Record<string, unknown> } | { ok: false; status: number; message: string };

/**
 * The reply header `{"JSONSocketVersion":1,"JSONSocketStatus":<status>,"JSONSocketMessage":<message>}`
 * as one message.
 */
export function reply(status: number, message: string): Buffer {
  return Buffer.from(JSON.stringify({ JSONSocketVersion: JSONSOCKET_VERSION, JSONSocketStatus: status, JSONSocketMessage: message }));
}

/** l7mp's error text `<status text>: <reason>`, e.g. `Not Found: No route for session "x"`. */
export function statusMessage(status: number, reason: string): string {
  return `${http.STATUS_CODES[status] ?? 'Error'}: ${reason}`;
}

/**
 * Deepest object/array nesting accepted in a header. A header becomes session metadata, which is
 * cloned, serialised and logged: V8 parses 1e6 levels but `JSON.stringify` of them throws
 * RangeError, so depth is capped before parsing.
 */
export const MAX_HEADER_DEPTH = 32;

/** {@link JsonObjectScanner.scan} results other than an end index. */
export const Scan = {
  /** More bytes are needed. */
  Incomplete: -1,
  /** The first non-blank byte is not `{`. */
  NotObject: -2,
  /** Nesting passed {@link MAX_HEADER_DEPTH}. */
  TooDeep: -3,
} as const;

/**
 * Finds the end of the first top-level JSON object of a byte stream fed in chunks, in one pass
 * (each byte is looked at once, whatever the chunking: 1-byte deliveries cost O(n), not O(n²)).
 * Strings and escapes are honoured, so braces inside strings do not count. It checks framing and
 * depth only; `JSON.parse` judges the rest.
 */
export class JsonObjectScanner {
  private depth = 0;
  private started = false;
  private inString = false;
  private escaped = false;
  private readonly maxDepth: number;

  /** @param maxDepth deepest nesting accepted (the outer object is depth 1). */
  constructor(maxDepth = MAX_HEADER_DEPTH) {
    this.maxDepth = maxDepth;
  }

  /**
   * Scan the next chunk. Returns the index in `chunk` just past the object's closing `}`, or a
   * {@link Scan} code. After anything but `Incomplete` the scanner must not be fed again.
   */
  scan(chunk: Uint8Array): number {
    let i = 0;
    if (!this.started) {
      while (i < chunk.length && (chunk[i] === 0x20 || chunk[i] === 0x09 || chunk[i] === 0x0a || chunk[i] === 0x0d)) i++;
      if (i === chunk.length) return Scan.Incomplete;
      if (chunk[i] !== 0x7b) return Scan.NotObject;
      this.started = true;
    }
    for (; i < chunk.length; i++) {
      const c = chunk[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (++this.depth > this.maxDepth) return Scan.TooDeep;
      } else if (c === 0x7d || c === 0x5d) {
        if (--this.depth === 0) return i + 1;
      }
    }
    return Scan.Incomplete;
  }
}

/**
 * Index just past the first top-level JSON object in `buf`, -1 while it is incomplete, -2 if the
 * bytes cannot start one (the first non-blank byte is not `{`), -3 if it nests deeper than
 * {@link MAX_HEADER_DEPTH}.
 */
export function jsonObjectEnd(buf: Uint8Array): number {
  return new JsonObjectScanner().scan(buf);
}

/** A short description of a peer's value for an error message (never re-serialises it whole). */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return v.length > 32 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

function parseObject(buf: Buffer): Record<string, unknown> | string {
  const end = jsonObjectEnd(buf);
  if (end === Scan.TooDeep) return `JSON header nested deeper than ${MAX_HEADER_DEPTH} levels`;
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    return `Invalid JSON header: ${(e as Error).message}`;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'JSON header must be an object';
  return v as Record<string, unknown>;
}

/**
 * Check a client's request header (server side). Invalid JSON, a missing or non-integer
 * `JSONSocketVersion`: 400. Any version other than 1: 505 (l7mp accepted 0, bug B21).
 */
export function checkRequest(buf: Buffer): RequestCheck {
  const h = parseObject(buf);
  if (typeof h === 'string') return { ok: false, status: 400, message: statusMessage(400, h) };
  const v = h.JSONSocketVersion;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    return { ok: false, status: 400, message: statusMessage(400, `JSONSocketVersion must be an integer, got ${describe(v)}`) };
  }
  if (v !== JSONSOCKET_VERSION) {
    return { ok: false, status: 505, message: statusMessage(400, `Unsupported JSONSocket version ${describe(v)}, this server speaks version ${JSONSOCKET_VERSION}`) };
  }
  return { ok: true, header: h };
}

/**
 * Check a server's reply (client side); null when accepted, else the reason. Rejected: invalid
 * JSON, `JSONSocketVersion` missing or not 1, `JSONSocketStatus` outside 200..299. A reply with no
 * `JSONSocketStatus` is accepted, as l7mp did (an Echo transport returns the request header).
 */
export function checkReply(buf: Buffer): string | null {
  const h = parseObject(buf);
  if (typeof h === 'string') return h;
  if (h.JSONSocketVersion !== JSONSOCKET_VERSION) return `unsupported JSONSocketVersion ${describe(h.JSONSocketVersion)}`;
  const st = h.JSONSocketStatus;
  if (st === undefined) return null;
  if (typeof st !== 'number' || st < 200 || st > 299) return `status ${describe(st)}: ${typeof h.JSONSocketMessage === 'string' ? h.JSONSocketMessage.slice(0, 512) : describe(h.JSONSocketMessage)}`;
  return null;
}

/** One element of a JSONSocket cluster's `header` list (docs/l7mp-compat.md §5, client side). */
export type HeaderOp = { path: string | { from: string; to?: string } } | { set: { key: string; value: unknown } };

/**
 * The request header a JSONSocket cluster sends for a session: each op in order copies a metadata
 * value (`path`: from → to, default to `/`, where `/` replaces the header built so far) or sets a
 * constant (`set`); then `JSONSocketVersion: 1` is forced. Values that are missing are skipped;
 * unlike l7mp, falsy values (0, false, "") are copied (bug B21).
 */
export function requestHeader(metadata: Record<string, unknown>, ops: readonly HeaderOp[] | undefined): Record<string, unknown> {
  const h: Record<string, unknown> = {};
  for (const op of ops ?? []) {
    if ('set' in op) {
      setAtPath(h, op.set.key, op.set.value);
      continue;
    }
    const from = typeof op.path === 'string' ? op.path : op.path.from;
    const to = typeof op.path === 'string' ? '/' : (op.path.to ?? '/');
    const v = getAtPath(metadata, from);
    if (v === undefined) continue;
    setAtPath(h, to, v);
  }
  h.JSONSocketVersion = JSONSOCKET_VERSION;
  return h;
}
