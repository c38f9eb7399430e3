/**
 * The WebSocket cluster connects to the picked endpoint, not to where a downstream's absolute-form
 * request target points (`GET ws://127.0.0.2:<port>/x`): l7mp took the host and port from the
 * request, which lets any peer of an Internet-facing listener steer the proxy (SSRF;
 * docs/threat-model.md). `target_from_request: true` restores l7mp's behaviour.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, waitFor, wsEcho } from '../helpers.ts';
import { closing, proxy } from './proto-helpers.ts';

async function upgradeWithTarget(port: number, target: string): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.on('data', (d) => (got += d.toString('latin1')));
  s.write(`GET ${target} HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await waitFor(() => got.includes('\r\n\r\n'), 3000, 'the upgrade answer');
  return got.split('\r\n')[0] ?? '';
}

for (const fromRequest of [false, true]) {
  test(`WebSocket cluster with target_from_request: ${fromRequest}: an absolute-form target ${fromRequest ? 'picks' : 'does not pick'} the upstream`, async (t) => {
    const a = closing(t, await wsEcho('a: ', '127.0.0.1'), (e) => e.close());
    const b = closing(t, await wsEcho('b: ', '127.0.0.2'), (e) => e.close());
    const lport = await freePort();
    await proxy(t, {
      listeners: [
        {
          name: 'ws-in',
          spec: { protocol: 'WebSocket', port: lport, address: '127.0.0.1' },
          rules: [{ action: { route: { destination: { spec: { protocol: 'WebSocket', port: a.port, target_from_request: fromRequest }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }],
        },
      ],
    });
    assert.equal(await upgradeWithTarget(lport, `ws://127.0.0.2:${b.port}/x`), 'HTTP/1.1 101 Switching Protocols');
    await waitFor(() => a.requests.length + b.requests.length >= 1, 3000, 'an upstream connection');
    if (fromRequest) {
      assert.equal(b.requests.length, 1);
      assert.equal(a.requests.length, 0);
    } else {
      assert.equal(a.requests.length, 1, 'the endpoint and the cluster port');
      assert.equal(b.requests.length, 0, 'never where the peer pointed');
      assert.equal(a.requests[0]?.url, '/x', 'the path is kept');
    }
  });
}
