/**
 * RTSP wire format: RFC 2326 (RTSP/1.0) and RFC 7826 (RTSP/2.0), which share the message syntax
 * (a start line, `Name: value` header lines, an empty line, a body of `Content-Length` bytes) and
 * the interleaved binary frame (`$`, channel, 16-bit length, payload: RFC 2326 §10.12, RFC 7826
 * §14) that carries RTP/RTCP over the control connection.
 *
 * {@link RtspParser} is a state machine over the chunks of a byte stream (ws `receiver.js`): heads
 * are bounded in bytes and header count, bodies in bytes; an interleaved frame is handed over as a
 * view of the chunk that carried it, without a copy, when it lies in one chunk. Anything the
 * bounds or the grammar refuse stops the parser (the connection is then answered 400 and closed):
 * a control channel that lost its framing cannot be resynchronised. Pure: no I/O.
 */

/** Bounds of one parsed message. */
export interface RtspLimits {
  /** Start line plus header lines plus the empty line. Unit: bytes. */
  maxHeadBytes: number;
  /** Header lines per message. */
  maxHeaders: number;
  /** `Content-Length` (SDP of a DESCRIBE answer, GET_PARAMETER bodies). Unit: bytes. */
  maxBodyBytes: number;
}

/** Defaults: 8 KiB heads (nginx `large_client_header_buffers`), 64 headers, 64 KiB bodies. */
export const DEFAULT_LIMITS: RtspLimits = Object.freeze({ maxHeadBytes: 8192, maxHeaders: 64, maxBodyBytes: 65536 });

/** One RTSP request or response. Header names keep their case; lookups ignore it. */
export interface RtspMessage {
  /** True for a request, false for a response. */
  request: boolean;
  /** Request method (`SETUP`...); '' in a response. */
  method: string;
  /** Request URL; '' in a response. */
  url: string;
  /** `RTSP/1.0` or `RTSP/2.0`. */
  version: string;
  /** Response status; 0 in a request. */
  status: number;
  /** Response reason phrase; '' in a request. */
  reason: string;
  /** Header lines in order, as `[name, value]`. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** What a {@link RtspParser} reports, in stream order. */
export interface RtspSink {
  /** A complete message. */
  message(m: RtspMessage): void;
  /** An interleaved frame: channel 0..255, its payload (a view; valid until the next chunk is pushed). */
  frame(channel: number, payload: Buffer): void;
  /** The stream broke a bound or the grammar; nothing more is reported. */
  error(reason: string): void;
}

const DOLLAR = 0x24;
const CR = 0x0d;
const LF = 0x0a;

/**
 * Index just past the empty line that ends a head starting at `from` (CRLF CRLF, or LF LF from a
 * lenient peer), or -1 if `d` does not hold it yet.
 */
function headEnd(d: Buffer, from: number): number {
  for (let i = d.indexOf(LF, from); i >= 0; i = d.indexOf(LF, i + 1)) {
    const n = d[i + 1];
    if (n === LF) return i + 2;
    if (n === CR && d[i + 2] === LF) return i + 3;
    if (n === undefined || (n === CR && i + 2 >= d.length)) return -1;
  }
  return -1;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VERSION = /^RTSP\/[12]\.0$/;

/** Parse a head (without its empty line); a reason string if it is not a valid RTSP head. */
export function parseHead(text: string, limits: RtspLimits = DEFAULT_LIMITS): RtspMessage | string {
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const start = lines[0] ?? '';
  if (lines.length - 1 > limits.maxHeaders) return `more than ${limits.maxHeaders} headers`;
  const m: RtspMessage = { request: true, method: '', url: '', version: '', status: 0, reason: '', headers: [], body: EMPTY };
  if (start.startsWith('RTSP/')) {
    const sp = start.indexOf(' ');
    const version = sp < 0 ? start : start.slice(0, sp);
    const rest = sp < 0 ? '' : start.slice(sp + 1);
    const code = rest.slice(0, 3);
    if (!VERSION.test(version) || !/^[1-9]\d\d$/.test(code) || (rest.length > 3 && rest[3] !== ' ')) return 'malformed status line';
    m.request = false;
    m.version = version;
    m.status = Number(code);
    m.reason = rest.slice(4);
  } else {
    const parts = start.split(' ');
    if (parts.length !== 3) return 'malformed request line';
    const [method, url, version] = parts as [string, string, string];
    if (!TOKEN.test(method) || url.length === 0 || !VERSION.test(version)) return 'malformed request line';
    m.method = method;
    m.url = url;
    m.version = version;
  }
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const c = line.indexOf(':');
    if (c <= 0) return `malformed header line ${i}`;
    const name = line.slice(0, c).trim();
    if (!TOKEN.test(name)) return `malformed header name on line ${i}`;
    m.headers.push([name, line.slice(c + 1).trim()]);
  }
  return m;
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits a byte stream into RTSP messages and interleaved frames.
 *
 * ```
 *   push(chunk) ─► [pending bytes of an incomplete head/body/frame] ++ chunk
 *                   │ '$' ch len16  → frame(ch, view)          (needs 4 + len bytes)
 *                   │ head CRLFCRLF → parse, Content-Length     (head ≤ maxHeadBytes)
 *                   │   body        → message(m)                (body ≤ maxBodyBytes)
 *                   └ CR/LF between messages are skipped
 * ```
 * Each byte of an incomplete head is searched once (`scanFrom`), however the stream is chunked.
 */
export class RtspParser {
  private readonly sink: RtspSink;
  private readonly limits: RtspLimits;
  private pending: Buffer | null = null;
  /** Offset in `pending` where the search for the end of the head resumes. */
  private scanFrom = 0;
  /** A parsed head waiting for its body, and the head's length in `pending`. */
  private head: RtspMessage | null = null;
  private headLen = 0;
  private bodyLen = 0;
  private failed = false;

  constructor(sink: RtspSink, limits: RtspLimits = DEFAULT_LIMITS) {
    this.sink = sink;
    this.limits = limits;
  }

  /** Bytes held for an incomplete message. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    let d = chunk;
    if (this.pending !== null) {
      d = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let off = 0;
    while (off < d.length && !this.failed) {
      if (this.head !== null) {
        const need = this.headLen + this.bodyLen;
        if (d.length - off < need) break;
        const m = this.head;
        m.body = this.bodyLen === 0 ? EMPTY : Buffer.from(d.subarray(off + this.headLen, off + need));
        this.head = null;
        off += need;
        this.sink.message(m);
        continue;
      }
      const b = d[off] as number;
      if (b === DOLLAR) {
        if (d.length - off < 4) break;
        const len = ((d[off + 2] as number) << 8) | (d[off + 3] as number);
        if (d.length - off < 4 + len) break;
        const ch = d[off + 1] as number;
        const payload = d.subarray(off + 4, off + 4 + len);
        off += 4 + len;
        this.sink.frame(ch, payload);
        continue;
      }
      if (b === CR || b === LF) {
        off++;
        continue;
      }
      const end = headEnd(d, off + this.scanFrom);
      if (end < 0) {
        if (d.length - off > this.limits.maxHeadBytes) return this.fail(`head longer than ${this.limits.maxHeadBytes} bytes`);
        this.scanFrom = Math.max(0, d.length - off - 2);
        break;
      }
      this.scanFrom = 0;
      if (end - off > this.limits.maxHeadBytes) return this.fail(`head longer than ${this.limits.maxHeadBytes} bytes`);
      const m = parseHead(d.toString('latin1', off, end), this.limits);
      if (typeof m === 'string') return this.fail(m);
      const cl = header(m, 'content-length');
      let bodyLen = 0;
      if (cl !== undefined) {
        if (!/^\d{1,9}$/.test(cl)) return this.fail('malformed Content-Length');
        bodyLen = Number(cl);
        if (bodyLen > this.limits.maxBodyBytes) return this.fail(`body longer than ${this.limits.maxBodyBytes} bytes`);
      }
      this.head = m;
      this.headLen = end - off;
      this.bodyLen = bodyLen;
    }
    if (off < d.length && !this.failed) this.pending = off === 0 ? d : d.subarray(off);
  }

  private fail(reason: string): void {
    this.failed = true;
    this.pending = null;
    this.head = null;
    this.sink.error(reason);
  }
}

/** The value of the first header named `name` (any case), or undefined. */
export function header(m: RtspMessage, name: string): string | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of m.headers) if (k.toLowerCase() === n) return v;
  return undefined;
}

/** Replace the first header named `name` (any case), or append it. */
export function setHeader(m: RtspMessage, name: string, value: string): void {
  const n = name.toLowerCase();
  for (const h of m.headers) {
    if (h[0].toLowerCase() === n) {
      h[1] = value;
      return;
    }
  }
  m.headers.push([name, value]);
}

/** The message as bytes; `Content-Length` follows the body. */
export function encode(m: RtspMessage): Buffer {
  if (m.body.length > 0) setHeader(m, 'Content-Length', String(m.body.length));
  let s = m.request ? `${m.method} ${m.url} ${m.version}\r\n` : `${m.version} ${m.status} ${m.reason}\r\n`;
  for (const [k, v] of m.headers) s += `${k}: ${v}\r\n`;
  s += '\r\n';
  const head = Buffer.from(s, 'latin1');
  return m.body.length === 0 ? head : Buffer.concat([head, m.body]);
}

/** A response to `req` with its `CSeq` (and `Session`, if given). */
export function response(req: RtspMessage | null, status: number, reason: string, headers: Array<[string, string]> = []): RtspMessage {
  const h: Array<[string, string]> = [];
  const cseq = req === null ? undefined : header(req, 'cseq');
  if (cseq !== undefined) h.push(['CSeq', cseq]);
  return { request: false, method: '', url: '', version: req?.version ?? 'RTSP/1.0', status, reason, headers: [...h, ...headers], body: EMPTY };
}

/** The 4-byte header of an interleaved frame of `len` bytes on `channel`. */
export function frameHeader(channel: number, len: number, into: Buffer = Buffer.allocUnsafe(4)): Buffer {
  into[0] = DOLLAR;
  into[1] = channel;
  into[2] = (len >> 8) & 0xff;
  into[3] = len & 0xff;
  return into;
}

/**
 * One transport spec of a `Transport` header (RFC 2326 §12.39, RFC 7826 §18.54), e.g.
 * `RTP/AVP;unicast;client_port=5000-5001`: the protocol part and its parameters in order
 * (`null` value: a flag such as `unicast`).
 */
export interface TransportSpec {
  /** `RTP/AVP`, `RTP/AVP/UDP`, `RTP/AVP/TCP`, `RTP/AVPF`, `RTP/SAVP`... */
  proto: string;
  params: Array<[string, string | null]>;
}

/** Parse a `Transport` header: comma-separated specs (quoted strings honoured: RTSP 2.0 `dest_addr="..."`). */
export function parseTransport(value: string): TransportSpec[] {
  const specs: TransportSpec[] = [];
  for (const part of splitOutsideQuotes(value, ',')) {
    const fields = splitOutsideQuotes(part, ';').map((f) => f.trim());
    const proto = fields.shift() ?? '';
    if (proto === '') continue;
    const params: Array<[string, string | null]> = [];
    for (const f of fields) {
      if (f === '') continue;
      const eq = f.indexOf('=');
      params.push(eq < 0 ? [f, null] : [f.slice(0, eq).trim(), f.slice(eq + 1).trim()]);
    }
    specs.push({ proto, params });
  }
  return specs;
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let q = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') q = !q;
    else if (c === sep && !q) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

/** A transport spec as header text. */
export function formatTransport(specs: readonly TransportSpec[]): string {
  return specs.map((t) => [t.proto, ...t.params.map(([k, v]) => (v === null ? k : `${k}=${v}`))].join(';')).join(',');
}

/** The value of parameter `name` of `t` (`null` for a flag), undefined if absent. */
export function param(t: TransportSpec, name: string): string | null | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of t.params) if (k.toLowerCase() === n) return v;
  return undefined;
}

/** Set parameter `name` of `t` (replacing it, or appended); `undefined` removes it. */
export function setParam(t: TransportSpec, name: string, value: string | null | undefined): void {
  const n = name.toLowerCase();
  const i = t.params.findIndex(([k]) => k.toLowerCase() === n);
  if (value === undefined) {
    if (i >= 0) t.params.splice(i, 1);
  } else if (i >= 0) (t.params[i] as [string, string | null])[1] = value;
  else t.params.push([name, value]);
}

/** The lower transport of an RTP spec: `tcp` for `RTP/AVP/TCP`, `udp` otherwise; null for a non-RTP spec. */
export function lowerTransport(t: TransportSpec): 'udp' | 'tcp' | null {
  const p = t.proto.toUpperCase().split('/');
  if (p[0] !== 'RTP' || p.length < 2) return null;
  const lower = p[2] ?? 'UDP';
  return lower === 'TCP' ? 'tcp' : lower === 'UDP' ? 'udp' : null;
}

/**
 * A port pair `a-b` (or a single port `a`, whose pair is a+1), each in `min..max`; null if
 * malformed. Interleaved channels are pairs too, in 0..255.
 */
export function parsePorts(v: string | null | undefined, min = 1, max = 65535): [number, number] | null {
  if (v === null || v === undefined) return null;
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v);
  if (m === null) return null;
  const a = Number(m[1]);
  const b = m[2] === undefined ? a + 1 : Number(m[2]);
  if (a < min || a > max || b < min || b > max) return null;
  return [a, b];
}

/** `/RTSP` session metadata of a request (l7mp's schema style: `/RTSP/method`, `/RTSP/url`, `/RTSP/headers/<lower-case name>`). */
export function requestMetadata(m: RtspMessage): Record<string, unknown> {
  const headers: Record<string, string> = {};
  for (const [k, v] of m.headers) {
    const n = k.toLowerCase();
    if (!(n in headers)) headers[n] = v;
  }
  let path = m.url;
  try {
    path = new URL(m.url).pathname;
  } catch {
    // `*` (OPTIONS *) or a relative URL: the path is the URL as given
  }
  return { method: m.method, url: m.url, path, version: m.version, headers };
}
