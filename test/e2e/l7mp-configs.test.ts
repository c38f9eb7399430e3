/**
 * l7mp's example configs (docs/l7mp-compat.md §9), loaded unchanged from test/fixtures/l7mp/ by the
 * real CLI, and driven over real sockets on their fixed ports: what an l7mp user who switches
 * sees. The tests run one after the other (fixed ports).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startConfigFile, type Proxy } from './proc.ts';
import { waitFor, wsClient, wsRecv } from '../helpers.ts';

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

test('l7mp-minimal.yaml: the controller on :1234 with l7mp\'s generated names; the spare Stdio and Logger clusters are there', { concurrency: false }, async () => {
  await withConfig('l7mp-minimal.yaml', async () => {
    const c = JSON.parse((await get('http://127.0.0.1:1234/api/v1/clusters')).text) as Array<{ name: string; spec: { protocol: string } }>;
    assert.deepEqual(
      c.map((x) => [x.name, x.spec.protocol]).sort(),
      [
        ['controller-listener-RuleList-0-Rule-0-Route-0-Cluster-0', 'L7mpController'],
        ['logger', 'Logger'],
        ['stdio', 'Stdio'],
      ],
    );
    const routes = JSON.parse((await get('http://127.0.0.1:1234/api/v1/routes')).text) as Array<{ name: string }>;
    assert.deepEqual(routes.map((r) => r.name), ['controller-listener-RuleList-0-Rule-0-Route-0'], 'the name l7mp gives (verified on l7mp)');
  });
});

test('l7mp-rule-test.yaml: WebSocket :9999 paths under /admin go to Echo, the rest to the proxy\'s stdout; ended sessions stay listed (track)', { concurrency: false }, async () => {
  await withConfig('l7mp-rule-test.yaml', async (p) => {
    const echo = await wsClient('ws://127.0.0.1:9999/admin/x');
    try {
      echo.send('to-echo');
      assert.equal((await wsRecv(echo, WAIT)).toString(), 'to-echo');
    } finally {
      echo.close();
    }
    const other = await wsClient('ws://127.0.0.1:9999/elsewhere');
    try {
      other.send('to-stdout-1234');
      await waitFor(() => p.stdout().includes('to-stdout-1234'), WAIT, 'the message on the proxy\'s stdout');
    } finally {
      other.close();
    }
    const sessions = await waitFor(
      async () => {
        const l = JSON.parse((await get('http://127.0.0.1:1234/api/v1/sessions')).text) as Array<{ name: string; status: string }>;
        const ws = l.filter((s) => s.name.startsWith('WS:'));
        return ws.length === 2 && ws.every((s) => s.status === 'DESTROYED') ? ws : null;
      },
      WAIT,
      'both WebSocket sessions listed as DESTROYED after they ended',
    );
    assert.equal(sessions?.length, 2);
  });
});

test('l7mp-sync-test.yaml: WebSocket clients on :9000 with the same id header are cross-connected', { concurrency: false }, async () => {
  const { WebSocket } = await import('ws');
  await withConfig('l7mp-sync-test.yaml', async () => {
    const open = async (id: string) => {
      const ws = new WebSocket('ws://127.0.0.1:9000/', { headers: { id } });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return ws;
    };
    const [a1, a2, b] = [await open('x-1'), await open('x-1'), await open('x-2')];
    try {
      // A session joins its domain once it is connected: retry the first message until it is heard.
      const heard = wsRecv(a2, WAIT);
      await waitFor(() => {
        a1.send('ping');
        return Promise.race([heard.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
      }, WAIT, 'a1 heard by a2');
      a2.send('pong');
      let got = (await wsRecv(a1, WAIT)).toString();
      while (got === 'ping') got = (await wsRecv(a1, WAIT)).toString(); // never its own message
      assert.equal(got, 'pong');
    } finally {
      [a1, a2, b].forEach((w) => w.close());
    }
  });
});

test('l7mp-udp-udp.yaml: UDP peers on :9001 and :9002 are connected back to back through the Sync cluster', { concurrency: false }, async () => {
  const { UdpClient } = await import('../helpers.ts');
  await withConfig('l7mp-udp-udp.yaml', async (p) => {
    const [a, b] = [await UdpClient.open(), await UdpClient.open()];
    try {
      a.send('a joins', 9001);
      // The Logger ingress chain prints a's datagram once its session is connected (a member of the domain).
      await waitFor(() => p.stdout().includes('ingress1: a joins'), WAIT, "a's session connected");
      b.send('b joins', 9002);
      assert.equal((await a.recv(WAIT)).toString(), 'b joins');
      a.send('hello b', 9001);
      assert.equal((await b.recv(WAIT)).toString(), 'hello b');
      b.send('hello a', 9002);
      assert.equal((await a.recv(WAIT)).toString(), 'hello a');
    } finally {
      a.close();
      b.close();
    }
  });
});
