import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { MessagePort } from 'node:worker_threads';
import { ProtocolServices } from '../../runtime/main/services.ts';
import type { ProtocolModule, ProtocolServiceHost } from '../../protocols/types.ts';

/** A protocol whose service host answers every message with `<name>:<message>`, and logs attach/detach. */
function fake(name: string, log: string[], made: { n: number }): ProtocolModule {
  return {
    name,
    kind: 'datagram',
    service: {
      host(): ProtocolServiceHost {
        made.n++;
        return {
          attach(port: MessagePort): void {
            log.push(`attach ${name}`);
            port.on('message', (m: string) => port.postMessage(`${name}:${m}`));
          },
          detach(port: MessagePort): void {
            log.push(`detach ${name}`);
            port.close();
          },
        };
      },
      worker(): void {},
    },
  };
}

test('services: a host per protocol with a service, made once; a channel per service per worker; detach once', async () => {
  const log: string[] = [];
  const made = { n: 0 };
  const list = new Map<string, ProtocolModule>([
    ['A', fake('A', log, made)],
    ['B', fake('B', log, made)],
    ['Plain', { name: 'Plain', kind: 'byte' }],
  ]);
  const services = new ProtocolServices(list);
  assert.equal(made.n, 0, 'no host before the first worker');
  const w1 = services.connect();
  const w2 = services.connect();
  assert.equal(made.n, 2, 'one host per service, shared by the workers');
  assert.deepEqual(Object.keys(w1.ports).sort(), ['A', 'B']);
  assert.equal(w1.transfer.length, 2);
  // The worker's end reaches its protocol's host.
  const b = w2.ports['B'] as MessagePort;
  const answer = once(b, 'message');
  b.postMessage('hi');
  assert.deepEqual(await answer, ['B:hi']);
  b.close();
  w1.detach();
  w1.detach();
  assert.deepEqual(log.filter((l) => l.startsWith('detach')), ['detach A', 'detach B'], 'detach is idempotent');
  w2.detach();
  for (const p of w1.transfer) p.close();
  (w2.ports['A'] as MessagePort).close();
});

test('services: the registry declares the Unix datagram service (the runtime names no protocol)', () => {
  const w = new ProtocolServices().connect();
  try {
    assert.deepEqual(Object.keys(w.ports), ['UnixDomainSocket']);
  } finally {
    w.detach();
    for (const p of w.transfer) p.close();
  }
});
