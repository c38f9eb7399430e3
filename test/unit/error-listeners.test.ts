/**
 * A static check (issue 12 item 1, no query of death): an emitter created on the data path without an
 * `'error'` listener throws its first error out of the event loop and ends the worker (§5.2). Every
 * source file under protocols/ that creates a socket, server, client request, WebSocket or child
 * process must also attach an `'error'` listener (or hand the object to a helper that does, named
 * in HANDLED_BY). Coarse on purpose (per file, not per object); the fuzz tests check behaviour.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.join(import.meta.dirname, '..', '..', 'protocols');

/** Constructors of emitters that emit 'error'. */
const CREATES = /\b(?:net\.createServer|http\.createServer|net\.createConnection|dgram\.createSocket|http\.request|new WebSocket\(|new WebSocketServer\(|spawn\(|new DgramSocket\()/;

/** Files whose emitters get their 'error' listener from a helper in another file. */
const HANDLED_BY: Readonly<Record<string, string>> = {
  // listen() in core/server.ts keeps an 'error' listener on every server it binds.
  'tcp/listener.ts': 'core/server.ts',
  'uds/listener.ts': 'core/server.ts',
  // Its accepted sockets get theirs in rtsp/control-base.ts (ControlConnection).
  'rtsp/listener.ts': 'core/server.ts',
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('every protocols/ file that creates an emitter also listens for its errors', () => {
  const offenders: string[] = [];
  let checked = 0;
  for (const file of sources(ROOT)) {
    const text = fs.readFileSync(file, 'utf8');
    if (!CREATES.test(text)) continue;
    checked++;
    const rel = path.relative(ROOT, file);
    const helper = HANDLED_BY[rel];
    const handled = /\.on(?:ce)?\(\s*'error'/.test(text) || (helper !== undefined && /\.on(?:ce)?\(\s*'error'/.test(fs.readFileSync(path.join(ROOT, helper), 'utf8')));
    if (!handled) offenders.push(rel);
  }
  assert.ok(checked >= 8, `the check found only ${checked} files that create emitters: is the pattern stale?`);
  assert.deepEqual(offenders, []);
});
