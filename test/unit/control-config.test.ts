/**
 * Config fields of control-plane safety (issue 12 item 6) at config time: Exec `env` names and
 * `env_passthrough`, Transform `timeout`, `admin.insecure` (read at start: not changeable over
 * the API); the loopback classification the admin checks use; the Exec child environment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { normalize } from '../../cluster-config/normalize.ts';
import { ConfigStore } from '../../cluster-config/store.ts';
import { ErrorCode } from '../../common/errors.ts';
import { isLoopback } from '../../common/net-addr.ts';
import { checkAdminBind } from '../../runtime/main/admin/server.ts';
import { childEnv } from '../../protocols/exec/index.ts';
import { exposedAdminListeners } from '../../runtime/main/admin/index.ts';

const MODULE = path.resolve(import.meta.dirname, '..', 'fixtures', 'transforms.ts');

function invalid(doc: unknown, message: string): void {
  assert.throws(
    () => normalize(doc),
    (e: unknown) => {
      assert.equal((e as { code?: string }).code, ErrorCode.ConfigInvalid);
      assert.equal((e as Error).message, message);
      return true;
    },
  );
}

const cluster = (spec: Record<string, unknown>): unknown => ({ clusters: [{ name: 'c', spec }] });

test('Exec env and env_passthrough: names are checked, naming the field and the value', () => {
  invalid(cluster({ protocol: 'Exec', command: ['cat'], env_passthrough: ['BAD-NAME'] }), 'clusters[0].spec.env_passthrough[0]: must be an environment variable name (letters, digits, _; not a digit first), got "BAD-NAME"');
  invalid(cluster({ protocol: 'Exec', command: ['cat'], env_passthrough: 'PATH' }), 'clusters[0].spec.env_passthrough: must be an array of environment variable names, e.g. ["PATH", "HOME"], got "PATH"');
  invalid(cluster({ protocol: 'Exec', command: ['cat'], env: { 'A=B': 'x' } }), 'clusters[0].spec.env: must name environment variables (letters, digits, _; not a digit first), got "A=B"');
  assert.doesNotThrow(() => normalize(cluster({ protocol: 'Exec', command: ['cat'], env_passthrough: [], env: { A_1: 'x' } })));
});

test('Exec child environment: PATH by default, the listed names, env over them, L7MP_SESSION/L7MP_METADATA last', () => {
  const parent = { PATH: '/bin', HOME: '/root', L7MP_ADMIN_TOKEN: 'secret', NATS_PASS: 'secret' };
  assert.deepEqual(childEnv({ protocol: 'Exec', command: ['x'] }, parent, 's', '{}'), { PATH: '/bin', L7MP_SESSION: 's', L7MP_METADATA: '{}' });
  assert.deepEqual(childEnv({ protocol: 'Exec', command: ['x'], env_passthrough: [] }, parent, 's', '{}'), { L7MP_SESSION: 's', L7MP_METADATA: '{}' });
  assert.deepEqual(childEnv({ protocol: 'Exec', command: ['x'], env_passthrough: ['HOME', 'UNSET'], env: { HOME: '/tmp', L7MP_SESSION: 'spoof' } }, parent, 's', '{}'), {
    HOME: '/tmp',
    L7MP_SESSION: 's',
    L7MP_METADATA: '{}',
  });
});

test('Transform timeout: an integer 1..3600000 ms', () => {
  invalid(cluster({ protocol: 'Transform', module: MODULE, export: 'upper', timeout: 0 }), 'clusters[0].spec.timeout: must be an integer number of milliseconds 1..3600000, got 0');
  assert.equal((normalize(cluster({ protocol: 'Transform', module: MODULE, export: 'upper', timeout: 250 })).clusters[0]?.spec as { timeout?: number }).timeout, 250);
});

test('admin.insecure: kept when true, refused at runtime over the API (read at start)', () => {
  assert.equal(normalize({ admin: { insecure: true } }).admin.insecure, true);
  assert.equal(normalize({ admin: { insecure: false } }).admin.insecure, undefined);
  invalid({ admin: { insecure: 'yes' } }, 'admin.insecure: must be true or false, got "yes"');
  const store = new ConfigStore(normalize({}));
  assert.throws(() => store.setAdmin({ insecure: true }), /Cannot set admin: admin\.insecure: cannot change at runtime/);
});

test('loopback: 127.0.0.0/8, ::1 in any spelling, ::ffff:127.x, localhost; not 0.0.0.0, ::, other addresses or names', () => {
  for (const h of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '[::]', '192.0.2.2', '::ffff:192.0.2.2', 'fd00::2', 'example.com', 'localhost.example.com', '', '128.0.0.1']) assert.ok(!isLoopback(h), h);
  assert.doesNotThrow(() => checkAdminBind('127.0.0.2', 0, undefined, false));
  assert.doesNotThrow(() => checkAdminBind('0.0.0.0', 0, 'tok', false));
  assert.doesNotThrow(() => checkAdminBind('::', 0, undefined, true));
  assert.throws(() => checkAdminBind('::', 8080, undefined, false), (e: unknown) => {
    assert.equal((e as { code?: string }).code, ErrorCode.AdminInsecure);
    assert.match((e as Error).message, /^admin: refusing to serve the admin API on \[::\]:8080 without a token/);
    return true;
  });
});

test('exposedAdminListeners: non-loopback listeners whose rules reach an L7mpController or Prometheus cluster (through apply, ingress too)', () => {
  const s = normalize({
    listeners: [
      { name: 'api', spec: { protocol: 'HTTP', port: 1234 }, rules: [{ action: { route: { destination: { name: 'ctl', spec: { protocol: 'L7mpController' } } } } }] },
      { name: 'local', spec: { protocol: 'HTTP', port: 1235, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'ctl' } } }] },
      { name: 'data', spec: { protocol: 'HTTP', port: 1236, address: '0.0.0.0' }, rules: [{ action: { route: { destination: { name: 'echo', spec: { protocol: 'Echo' } } } } }] },
      { name: 'jump', spec: { protocol: 'HTTP', port: 1237, address: '::' }, rules: 'jumps' },
    ],
    clusters: [{ name: 'prom', spec: { protocol: 'Prometheus' } }],
    rulelists: [
      { name: 'jumps', rules: [{ action: { apply: 'metrics' } }] },
      { name: 'metrics', rules: [{ action: { route: { ingress: ['prom'], destination: 'echo' } } }] },
    ],
  });
  assert.deepEqual(exposedAdminListeners(s), [
    { listener: 'api', address: '*', cluster: 'ctl' },
    { listener: 'jump', address: '::', cluster: 'prom' },
  ]);
});
