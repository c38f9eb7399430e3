/**
 * l7mp's example configs (compat reference §9), loaded unchanged from test/fixtures/l7mp/ by the
 * real CLI, and driven over real sockets on their fixed ports: what an l7mp user who switches
 * sees. The tests run one after the other (fixed ports).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startConfigFile, type Proxy } from './proc.ts';
import { waitFor } from '../helpers.ts';

const fixtures = path.resolve(import.meta.dirname, '..', 'fixtures', 'l7mp');
const WAIT = 10_000;

async function withConfig(name: string, fn: (p: Proxy) => Promise<void>): Promise<void> {
  const p = await startConfigFile(path.join(fixtures, name), ['--workers', '2']);
  try {
    await fn(p);
  } finally {
    const { code } = await p.stop();
    assert.equal(code, 0, `exit code of the proxy on ${name}:\n${p.stderr()}`);
  }
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(WAIT) });
  return { status: r.status, text: await r.text() };
}

test('l7mp-prometheus.yaml: the API on :1234 through an inline L7mpController, metrics on :1235/prometheus through a named rule', { concurrency: false }, async () => {
  await withConfig('l7mp-prometheus.yaml', async () => {
    const l = await get('http://127.0.0.1:1234/api/v1/listeners');
    assert.equal(l.status, 200, l.text);
    assert.deepEqual(
      JSON.parse(l.text).map((x: { name: string }) => x.name),
      ['controller_listener', 'prometheus_listener'],
    );
    const rules = JSON.parse((await get('http://127.0.0.1:1234/api/v1/rules/rule-prom')).text);
    assert.deepEqual(rules.match, { op: 'starts', path: '/HTTP/url/path', value: '/prometheus' });
    const m = (await waitFor(
      async () => {
        const r = await get('http://127.0.0.1:1235/prometheus');
        return /listener_requests_total\{listenerName="controller_listener",protocol="HTTP"\} [2-9]/.test(r.text) ? r : null;
      },
      WAIT,
      'the two API requests counted in the exposition',
    )) as { status: number; text: string };
    assert.equal(m.status, 200);
    assert.match(m.text, /^# HELP /m);
    assert.match(m.text, /^# TYPE listener_requests_total counter$/m);
    assert.equal((await get('http://127.0.0.1:1235/other')).status, 404, 'the rule only matches /prometheus');
  });
});

test('l7mp-metric-prometheus.yaml: the controller behind a Metric ingress chain; cluster and listener counters on :8080/metrics', { concurrency: false }, async () => {
  await withConfig('l7mp-metric-prometheus.yaml', async () => {
    const c = await get('http://127.0.0.1:1234/api/v1/clusters');
    assert.equal(c.status, 200, c.text);
    assert.deepEqual(
      JSON.parse(c.text).map((x: { name: string }) => x.name).sort(),
      ['l7mp-controller', 'l7mp-controller-ingress-counter', 'prometheus-cluster'],
    );
    const m = (await waitFor(
      async () => {
        const r = await get('http://127.0.0.1:8080/metrics');
        return /cluster_requests_total\{clusterName="l7mp-controller-ingress-counter",protocol="Metric"\} [1-9]/.test(r.text) ? r : null;
      },
      WAIT,
      'the Metric stage of the API request counted',
    )) as { status: number; text: string };
    assert.match(m.text, /^# TYPE session_byte_counter_total counter$/m);
    assert.match(m.text, /^# TYPE session_packet_counter_total counter$/m);
    assert.match(m.text, /listener_requests_total\{listenerName="controller_listener",protocol="HTTP"\} [1-9]/);
  });
});

test('l7mp-uds-echo.yaml: the Unix socket echo server on /var/run/sock/uds-echo.sock; the file is gone after exit', { concurrency: false }, async () => {
  const file = '/var/run/sock/uds-echo.sock';
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await withConfig('l7mp-uds-echo.yaml', async () => {
    const sock = net.createConnection({ path: file });
    try {
      const got = await new Promise<string>((resolve, reject) => {
        let buf = '';
        sock.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf === 'ping over unix') resolve(buf);
        });
        sock.on('error', reject);
        setTimeout(() => reject(new Error(`no echo within ${WAIT} ms (got "${buf}")`)), WAIT).unref();
        sock.write('ping over unix');
      });
      assert.equal(got, 'ping over unix');
    } finally {
      sock.destroy();
    }
  });
  assert.equal(fs.existsSync(file), false, 'the socket file is removed at exit');
});
