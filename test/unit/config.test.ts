/**
 * cluster-config/normalize.ts: validation errors that name the field path and the value, l7mp's
 * names for inline objects (docs/l7mp-compat.md §1.9), retry defaults (§1.7, B14 fixed) and the
 * frozen snapshot. No sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sessionSockets } from '../../protocols/udp/modes.ts';
import { listenerSessionFds, sessionFds } from '../../runtime/session-fds.ts';
import { FDS_PER_SESSION, sessionCap } from '../../common/fd-limit.ts';
import { normalize, Namer } from '../../cluster-config/normalize.ts';
import { DEFAULT_RETRY } from '../../cluster-config/snapshot.ts';
import { ErrorCode } from '../../common/errors.ts';
import { protocol } from '../../protocols/registry.ts';

/** A listener with one wildcard rule routing to an inline Echo cluster. */
function listener(spec: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'l', spec, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }], ...extra };
}

/** Assert that `doc` is rejected with `code` and exactly `message`. */
function rejects(doc: unknown, code: string, message: string, opts?: { strict?: boolean }): void {
  assert.throws(
    () => normalize(doc, opts),
    (e: unknown) => {
      const err = e as { code?: string; message?: string };
      assert.equal(err.message, message);
      assert.equal(err.code, code);
      return true;
    },
  );
}

test('config errors: bad port type and range name the path and the value', () => {
  rejects({ listeners: [listener({ protocol: 'UDP', port: 9000 }), listener({ protocol: 'UDP', port: 'abc' }, { name: 'l2' })] }, ErrorCode.ConfigInvalid, 'listeners[1].spec.port: must be an integer 1..65535, got "abc"');
  rejects({ listeners: [listener({ protocol: 'TCP', port: 70000 })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.port: must be an integer 1..65535, got 70000');
  rejects({ listeners: [listener({ protocol: 'TCP', port: 0 })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.port: must be an integer 1..65535, got 0');
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 1.5 } }] }, ErrorCode.ConfigInvalid, 'clusters[0].spec.port: must be an integer 1..65535, got 1.5');
});

test('config errors: unknown protocol, and a protocol with no listener side', () => {
  rejects({ listeners: [listener({ protocol: 'SCTP', port: 1 })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.protocol: no listener for protocol "SCTP"');
  rejects({ listeners: [listener({ protocol: 'Echo' })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.protocol: no listener for protocol "Echo"');
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'SCTP' } }] }, ErrorCode.ConfigInvalid, 'clusters[0].spec.protocol: no cluster for protocol "SCTP"');
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'HTTP' } }] }, ErrorCode.ConfigInvalid, 'clusters[0].spec.port: is required');
});

test('config errors: missing required fields', () => {
  rejects({ listeners: [listener({ protocol: 'UDP' })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.port: is required');
  rejects({ listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 } }] }, ErrorCode.ConfigInvalid, 'listeners[0].rules: is required');
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 1 }, endpoints: [{ spec: {} }] }] }, ErrorCode.ConfigInvalid, 'clusters[0].endpoints[0].spec.address: is required');
  rejects({ routes: [{ destination: 'c' }] }, ErrorCode.ConfigInvalid, 'routes[0].name: is required');
  rejects(42, ErrorCode.ConfigInvalid, '(document): must be an object, got 42');
});

test('config errors: bad enum values list the allowed ones', () => {
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 1 }, loadbalancer: { policy: 'RoundRobin' } }] }, ErrorCode.ConfigInvalid, 'clusters[0].loadbalancer.policy: must be "Trivial", "ConsistentHash", "HashRing" or "None", got "RoundRobin"');
  rejects({ routes: [{ name: 'r', destination: 'c', retry: { retry_on: 'sometimes' } }] }, ErrorCode.ConfigInvalid, 'routes[0].retry.retry_on: must be "never", "connect-failure", "disconnect" or "always", got "sometimes"');
  rejects({ listeners: [listener({ protocol: 'UDP', port: 1, options: { mode: 'client' } })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.options.mode: must be "server" or "singleton", got "client"');
  rejects({ listeners: [listener({ protocol: 'UDP', port: 1, options: { idle_timeout: -1 } })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.options.idle_timeout: must be a number of seconds >= 0, got -1');
});

test('config errors: duplicate names, top-level and inline', () => {
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'Echo' } }, { name: 'c', spec: { protocol: 'Discard' } }] }, ErrorCode.ConfigDuplicate, 'clusters[1].name: Cluster "c" already defined');
  rejects({ listeners: [listener({ protocol: 'UDP', port: 1 }), listener({ protocol: 'UDP', port: 2 })] }, ErrorCode.ConfigDuplicate, 'listeners[1].name: Listener "l" already defined');
  // An inline object is always created, never reused: an inline cluster with a taken name fails.
  rejects(
    {
      clusters: [{ name: 'c', spec: { protocol: 'Echo' } }],
      listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 }, rules: [{ action: { route: { destination: { name: 'c', spec: { protocol: 'Echo' } } } } }] }],
    },
    ErrorCode.ConfigDuplicate,
    'listeners[0].rules[0].action.route.destination.name: Cluster "c" already defined',
  );
  rejects({ rules: [{ name: 'r', action: { route: 'x' } }, { name: 'r', action: { route: 'y' } }] }, ErrorCode.ConfigDuplicate, 'rules[1].name: Rule "r" already defined');
});

test('config errors: strict mode rejects unknown fields and dangling references; lax mode accepts them', () => {
  rejects({ admin: { strict: true }, listeners: [listener({ protocol: 'UDP', port: 1, colour: 'red' })] }, ErrorCode.ConfigInvalid, 'listeners[0].spec.colour: unknown field (strict mode)');
  rejects({ listeners: [listener({ protocol: 'UDP', port: 1 }, { bogus: 1 })] }, ErrorCode.ConfigInvalid, 'listeners[0].bogus: unknown field (strict mode)', { strict: true });
  rejects({ listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 }, rules: 'nope' }] }, ErrorCode.ConfigUnknownRef, 'listeners[0].rules: RuleList "nope" is not defined', { strict: true });
  const warnings: string[] = [];
  const s = normalize({ listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1, colour: 'red' }, rules: 'nope' }] }, { warn: (m) => warnings.push(m) });
  assert.equal(s.listeners[0]?.rules, 'nope');
  assert.deepEqual(warnings, [
    'listeners[0].spec.colour: unknown field, ignored (strict mode, -s, rejects it)',
    'listeners[0].rules: RuleList "nope" is not defined (resolved when a session is routed)',
  ]);
});

test('lax mode names every unknown field in a warning: a misplaced option does not pass unnoticed', () => {
  const warnings: string[] = [];
  const doc = {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port: 1, session_sockets: 'listener', options: { session_sockets: 'listener', idle_timout: 5 } },
        optionz: {},
        rules: [{ action: { route: { destination: { name: 'c', spec: { protocol: 'UDP', port: 2, bogus: 1 }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }],
      },
    ],
  };
  const s = normalize(doc, { warn: (m) => warnings.push(m) });
  assert.equal((s.listeners[0]?.spec as { options?: { session_sockets?: string } }).options?.session_sockets, 'listener');
  assert.deepEqual(warnings.sort(), [
    'listeners[0].optionz: unknown field, ignored (strict mode, -s, rejects it)',
    'listeners[0].rules[0].action.route.destination.spec.bogus: unknown field, ignored (strict mode, -s, rejects it)',
    'listeners[0].spec.options.idle_timout: unknown field, ignored (strict mode, -s, rejects it)',
    'listeners[0].spec.session_sockets: unknown field, ignored (strict mode, -s, rejects it)',
  ]);
  // A clean document gets no warning.
  const clean: string[] = [];
  normalize({ listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1, options: { session_sockets: 'listener' } }, rules: [{ action: { route: { destination: 'c' } } }] }], clusters: [{ name: 'c', spec: { protocol: 'Echo' } }] }, { warn: (m) => clean.push(m) });
  assert.deepEqual(clean, []);
});

test('config errors: endpoints on a virtual cluster, routes without a destination, rules without an action target', () => {
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'Echo' }, endpoints: [{ spec: { address: '127.0.0.1' } }] }] }, ErrorCode.ConfigInvalid, 'clusters[0].endpoints: Adding an endpoint to a cluster of type Echo is not supported');
  rejects({ routes: [{ name: 'r' }] }, ErrorCode.ConfigInvalid, 'routes[0].destination: is required');
  rejects({ listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 }, rules: [{ action: { route: { ingress: ['x'] } } }] }] }, ErrorCode.ConfigInvalid, 'listeners[0].rules[0].action.route.destination: is required');
  rejects({ listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 }, rules: [{ action: {} }] }] }, ErrorCode.ConfigInvalid, 'listeners[0].rules[0].action: needs a route or an apply, got {}');
});

test('config errors: names, weights, socket paths', () => {
  rejects({ clusters: [{ name: 'a b', spec: { protocol: 'Echo' } }] }, ErrorCode.ConfigInvalid, 'clusters[0].name: must be a non-empty name without whitespace, got "a b"');
  rejects({ clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 1 }, endpoints: [{ spec: { address: 'x' }, weight: 0 }] }] }, ErrorCode.ConfigInvalid, 'clusters[0].endpoints[0].weight: must be a number > 0, got 0');
  assert.throws(() => normalize({ listeners: [listener({ protocol: 'UnixDomainSocket', filename: 'x'.repeat(200) })] }), /^L7Error: listeners\[0\]\.spec\.filename: must be a socket path of 1\.\.107 characters, got "x+\.\.\.$/);
  // Names may carry slashes (the k8s operator's fqn names).
  assert.equal(normalize({ clusters: [{ name: '/l7mp.io/v1/Target/ns/x', spec: { protocol: 'Echo' } }] }).clusters[0]?.name, '/l7mp.io/v1/Target/ns/x');
});

test('inline objects get l7mp names: <listener>-RuleList-0-Rule-0-Route-0-Cluster-0 and so on', () => {
  const s = normalize({
    clusters: [{ name: 'named', spec: { protocol: 'Echo' } }],
    listeners: [
      {
        name: 'ctl',
        spec: { protocol: 'UDP', port: 1 },
        rules: [
          {
            action: {
              route: {
                destination: { spec: { protocol: 'UDP', port: 2 }, endpoints: [{ spec: { address: '127.0.0.1' } }, { name: 'e1', spec: { address: '127.0.0.2' }, weight: 3 }] },
                ingress: [{ spec: { protocol: 'Logger' } }, 'named'],
                egress: [{ spec: { protocol: 'Echo' } }],
              },
            },
          },
          { match: { op: 'test', path: '/a', value: 1 }, action: { route: { name: 'myroute', destination: 'named' } } },
        ],
      },
      { name: 'l2', spec: { protocol: 'TCP', port: 3 }, rules: 'rl' },
    ],
    rulelists: [{ name: 'rl', rules: ['r0', { action: { route: 'myroute' } }] }],
    rules: [{ name: 'r0', match: '*', action: { apply: 'rl' } }],
  });
  const p = 'ctl-RuleList-0-Rule-0-Route-0';
  assert.equal(s.listeners[0]?.rules, 'ctl-RuleList-0');
  assert.equal(s.listeners[1]?.rules, 'rl');
  assert.deepEqual(s.rulelists.find((r) => r.name === 'ctl-RuleList-0')?.rules, ['ctl-RuleList-0-Rule-0', 'ctl-RuleList-0-Rule-1']);
  // The Rule counter is per class and process-wide: the rulelist's inline rule is the third one.
  assert.deepEqual(s.rulelists.find((r) => r.name === 'rl')?.rules, ['r0', 'rl-Rule-2']);
  const route = s.routes.find((r) => r.name === p);
  assert.ok(route !== undefined);
  assert.equal(route.destination, `${p}-Cluster-0`);
  assert.deepEqual(route.ingress, [`${p}-ingress-Cluster-1`, 'named']);
  assert.deepEqual(route.egress, [`${p}-egress-Cluster-2`]);
  const dest = s.clusters.find((c) => c.name === `${p}-Cluster-0`);
  assert.deepEqual(dest?.endpoints.map((e) => [e.name, e.weight]), [[`${p}-Cluster-0-EndPoint-0`, 1], ['e1', 3]]);
  assert.equal(s.rules.find((r) => r.name === 'ctl-RuleList-0-Rule-1')?.action.route, 'myroute');
  // A wildcard (missing or string match) is null; a predicate is kept.
  assert.equal(s.rules.find((r) => r.name === 'r0')?.match, null);
  assert.deepEqual(s.rules.find((r) => r.name === 'ctl-RuleList-0-Rule-1')?.match, { op: 'test', path: '/a', value: 1 });
  // Virtual clusters use the None load balancer; others default to Trivial.
  assert.deepEqual(s.clusters.find((c) => c.name === 'named')?.loadbalancer, { policy: 'None' });
  assert.deepEqual(dest?.loadbalancer, { policy: 'Trivial' });
  // Everything created inline is listed as autogenerated, nothing else.
  assert.deepEqual([...s.autogenerated].sort(), [
    'ctl-RuleList-0',
    'ctl-RuleList-0-Rule-0',
    p,
    `${p}-Cluster-0`,
    `${p}-Cluster-0-EndPoint-0`,
    `${p}-egress-Cluster-2`,
    `${p}-ingress-Cluster-1`,
    'ctl-RuleList-0-Rule-1',
    'rl-Rule-2',
  ].sort());
});

test('inline naming: a clash gets _1, and a shared Namer continues its counters', () => {
  // A top-level cluster already has the name the generator would pick first.
  const s = normalize({
    clusters: [{ name: 'l-RuleList-0-Rule-0-Route-0-Cluster-0', spec: { protocol: 'Echo' } }],
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 }, rules: [{ action: { route: { destination: { spec: { protocol: 'Discard' } } } } }] }],
  });
  assert.equal(s.routes[0]?.destination, 'l-RuleList-0-Rule-0-Route-0-Cluster-0_1');
  const namer = new Namer();
  const doc = { listeners: [listener({ protocol: 'UDP', port: 1 })] };
  assert.equal(normalize(doc, { namer }).listeners[0]?.rules, 'l-RuleList-0');
  assert.equal(normalize(doc, { namer }).listeners[0]?.rules, 'l-RuleList-1');
});

test('retry defaults: missing gives never/1/2000; a partial object is merged with the defaults (B14 fixed)', () => {
  const s = normalize({
    routes: [
      { name: 'none', destination: 'c' },
      { name: 'partial', destination: 'c', retry: { retry_on: 'always' } },
      { name: 'partial2', destination: 'c', retry: { num_retries: 5, timeout: 100 } },
      { name: 'full', destination: 'c', retry: { retry_on: 'connect-failure', num_retries: 3, timeout: 200 } },
    ],
    clusters: [{ name: 'c', spec: { protocol: 'Echo' } }],
  });
  const r = (n: string) => s.routes.find((x) => x.name === n)?.retry;
  assert.deepEqual(DEFAULT_RETRY, { retry_on: 'never', num_retries: 1, timeout: 2000 });
  assert.deepEqual(r('none'), { retry_on: 'never', num_retries: 1, timeout: 2000 });
  assert.deepEqual(r('partial'), { retry_on: 'always', num_retries: 1, timeout: 2000 });
  assert.deepEqual(r('partial2'), { retry_on: 'never', num_retries: 5, timeout: 100 });
  assert.deepEqual(r('full'), { retry_on: 'connect-failure', num_retries: 3, timeout: 200 });
  assert.equal(s.routes.find((x) => x.name === 'none')?.ingress.length, 0);
  // `cluster` is l7mp's old alias of `destination`.
  assert.equal(normalize({ routes: [{ name: 'old', cluster: 'c' }] }).routes[0]?.destination, 'c');
});

test('the snapshot is deeply frozen and does not alias the document', () => {
  const doc = {
    clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 5000 }, endpoints: [{ spec: { address: '127.0.0.1' } }], loadbalancer: { policy: 'ConsistentHash', key: '/IP/src_addr' } }],
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1, options: { idle_timeout: 3 } }, rules: [{ match: { op: 'test', path: '/UDP/src_port', value: 1 }, action: { rewrite: [{ path: '/x', value: { a: 1 } }], route: { destination: 'c' } } }] }],
  };
  const s = normalize(doc);
  assert.ok(Object.isFrozen(s));
  for (const part of [s.admin, s.listeners, s.clusters, s.rulelists, s.rules, s.routes, s.autogenerated]) assert.ok(Object.isFrozen(part));
  const c = s.clusters[0];
  assert.ok(c !== undefined);
  assert.ok(Object.isFrozen(c.spec) && Object.isFrozen(c.endpoints) && Object.isFrozen(c.endpoints[0]?.spec) && Object.isFrozen(c.loadbalancer));
  assert.ok(Object.isFrozen(s.listeners[0]?.spec.options));
  assert.ok(Object.isFrozen(s.rules[0]?.match) && Object.isFrozen(s.rules[0]?.action.rewrite[0]?.value));
  assert.ok(Object.isFrozen(s.routes[0]?.retry));
  assert.throws(() => {
    (c as { name: string }).name = 'x';
  }, TypeError);
  assert.throws(() => {
    (c.endpoints as unknown[]).push({});
  }, TypeError);
  assert.deepEqual(c.loadbalancer, { policy: 'ConsistentHash', key: '/IP/src_addr' });
  assert.deepEqual(s.admin, { log_level: 'info', strict: false, offload: 'disable' });
  assert.deepEqual(s.listeners[0]?.options, { track: 0 });
  // The caller's document is neither frozen nor shared with the snapshot.
  assert.ok(!Object.isFrozen(doc.clusters[0]?.spec) && !Object.isFrozen(doc.listeners[0]?.rules[0]?.match));
  (doc.clusters[0] as { spec: { port: number } }).spec.port = 6000;
  assert.equal(c.spec.port, 5000);
  assert.throws(() => normalize({ x: () => 1 }), { code: ErrorCode.ConfigInvalid });
});

test('strict mode accepts top-level rules and still rejects their unknown fields', () => {
  const doc = {
    rules: [{ name: 'r', action: { route: 'x' } }],
    routes: [{ name: 'x', destination: 'c' }],
    clusters: [{ name: 'c', spec: { protocol: 'Echo' } }],
  };
  assert.deepEqual(normalize(doc, { strict: true }).rules.map((r) => r.name), ['r']);
  assert.throws(
    () => normalize({ ...doc, rules: [{ name: 'r', action: { route: 'x' }, bogus: 1 }] }, { strict: true }),
    (e: Error & { code?: string }) => e.code === 'L7_ERR_CONFIG_INVALID' && e.message === 'rules[0].bogus: unknown field (strict mode)',
  );
});

test('config errors: two listeners binding the same local address (SO_REUSEPORT would split the traffic)', () => {
  const l = (name: string, spec: Record<string, unknown>) => ({ name, spec, rules: [{ action: { route: { destination: 'e' } } }] });
  const doc = (...listeners: unknown[]) => ({ listeners, clusters: [{ name: 'e', spec: { protocol: 'Echo' } }] });
  rejects(doc(l('a', { protocol: 'TCP', port: 7000 }), l('b', { protocol: 'HTTP', port: 7000 })), ErrorCode.ConfigInvalid, 'listeners[1].spec: listener "b" binds TCP [::]:7000, which listener "a" binds already');
  rejects(doc(l('a', { protocol: 'WebSocket', port: 7000, address: '127.0.0.1' }), l('b', { protocol: 'TCP', port: 7000 })), ErrorCode.ConfigInvalid, 'listeners[1].spec: listener "b" binds TCP [::]:7000, which listener "a" binds already');
  rejects(
    doc(l('a', { protocol: 'UDP', port: 7000 }), l('b', { protocol: 'JSONSocket', transport: { protocol: 'UDP', port: 7000 } })),
    ErrorCode.ConfigInvalid,
    'listeners[1].spec: listener "b" binds UDP 0.0.0.0:7000, which listener "a" binds already',
  );
  rejects(doc(l('a', { protocol: 'UnixDomainSocket', filename: '/tmp/x.sock' }), l('b', { protocol: 'UnixDomainSocket', filename: '/tmp/x.sock', type: 'dgram' })), ErrorCode.ConfigInvalid, 'listeners[1].spec: listener "b" binds the Unix socket /tmp/x.sock, which listener "a" binds already');
  // Different transports, or two specific addresses, do not clash.
  assert.equal(normalize(doc(l('a', { protocol: 'UDP', port: 7000 }), l('b', { protocol: 'TCP', port: 7000 }))).listeners.length, 2);
  assert.equal(normalize(doc(l('a', { protocol: 'TCP', port: 7000, address: '127.0.0.1' }), l('b', { protocol: 'TCP', port: 7000, address: '127.0.0.2' }))).listeners.length, 2);
});

test('UDP idle timeout: 120 s by default in server mode; none for a singleton unless set (its one session is the listener)', () => {
  const side = protocol('UDP')?.listener;
  assert.ok(side?.idleTimeoutMs !== undefined);
  assert.equal(side.idleTimeoutMs({ protocol: 'UDP', port: 1 }), 120_000);
  assert.equal(side.idleTimeoutMs({ protocol: 'UDP', port: 1, connect: { address: '127.0.0.1', port: 2 } }), 0);
  assert.equal(side.idleTimeoutMs({ protocol: 'UDP', port: 1, connect: { address: '127.0.0.1', port: 2 }, options: { idle_timeout: 5 } }), 5000);
});

test('examples/udp-gateway.yaml validates strictly; its admission limits and listener sockets are what README says', async () => {
  const { readConfigFile } = await import('../../cluster-config/load.ts');
  const path = await import('node:path');
  const s = normalize(readConfigFile(path.join(import.meta.dirname, '..', '..', 'examples', 'udp-gateway.yaml')), { strict: true });
  const l = s.listeners.find((x) => x.name === 'gateway');
  assert.ok(l !== undefined);
  assert.equal(l.options.session_rate, 1000);
  assert.equal(l.options.max_sessions_per_source, 64);
  assert.equal((l.spec.options as { session_sockets?: string }).session_sockets, 'listener');
  assert.equal(s.admin.overload_lag_ms, 50);
});

test('admin.steering: false is kept (no reuseport steering); unset or true leaves the default', () => {
  const doc = (steering?: boolean) => ({ ...(steering === undefined ? {} : { admin: { steering } }), listeners: [] });
  assert.equal(normalize(doc(false), { strict: true }).admin.steering, false);
  assert.equal(normalize(doc(true), { strict: true }).admin.steering, undefined);
  assert.equal(normalize(doc()).admin.steering, undefined);
  assert.throws(() => normalize({ admin: { steering: 'no' } } as never), /admin\.steering/);
});

test('UDP session_sockets: unset is listener with one worker (offload or not) or with steered workers, connected with more unsteered ones; a set value always wins', () => {
  const spec = (session_sockets?: 'connected' | 'listener') => ({ protocol: 'UDP' as const, port: 1, ...(session_sockets === undefined ? {} : { options: { session_sockets } }) });
  assert.equal(sessionSockets(spec(), {}), 'listener');
  assert.equal(sessionSockets(spec(), { workers: 1 }), 'listener');
  assert.equal(sessionSockets(spec(), { workers: 2 }), 'connected');
  assert.equal(sessionSockets(spec(), { workers: 2, steered: false }), 'connected');
  assert.equal(sessionSockets(spec(), { workers: 2, steered: true }), 'listener');
  assert.equal(sessionSockets(spec('connected'), { workers: 2, steered: true }), 'connected');
  assert.equal(sessionSockets(spec('connected'), { workers: 1 }), 'connected');
  assert.equal(sessionSockets(spec('listener'), { workers: 4 }), 'listener');
});

test('fds per session: 1 where a listener answers from its listening sockets, else 2; each listener\'s own figure, and the fewest for the session cap', () => {
  const udp = (name: string, port: number, options?: Record<string, unknown>) => ({
    name,
    spec: { protocol: 'UDP', port, ...(options === undefined ? {} : { options }) },
    rules: [{ action: { route: { destination: 'c' } } }],
  });
  const snap = (listeners: unknown[]) => normalize({ listeners, clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 9 }, endpoints: [{ spec: { address: '127.0.0.1' } }] }] } as never);
  const one = { workers: 1, offload: false };
  assert.equal(sessionFds(snap([udp('a', 1), udp('b', 2)]), one), 1, 'default UDP listeners, one worker: the upstream socket only');
  assert.equal(sessionFds(snap([udp('a', 1), udp('b', 2)]), { workers: 2, offload: false }), 2, 'two workers: connected session sockets');
  assert.equal(sessionFds(snap([udp('a', 1)]), { workers: 2, offload: false, steered: true }), 2, 'two steered workers: a session whose datagrams reach another worker connects a socket');
  assert.equal(sessionFds(snap([udp('a', 1, { session_sockets: 'listener' })]), { workers: 2, offload: false, steered: true }), 1, 'a set listener mode never does');
  assert.equal(sessionFds(snap([udp('a', 1)]), { workers: 1, offload: true }), 2, 'offload: a spliced session gets a connected socket');
  const mixed = snap([udp('a', 1), udp('b', 2, { session_sockets: 'connected' }), { name: 't', spec: { protocol: 'TCP', port: 3 }, rules: [{ action: { route: { destination: 'c' } } }] }]);
  assert.equal(sessionFds(mixed, one), 1, 'the fewest of any listener: the most sessions the fd budget holds');
  assert.deepEqual(
    mixed.listeners.map((l) => listenerSessionFds(l, one)),
    [1, 2, 2],
    'each listener: the upstream socket, plus a socket connected to the peer, or a stream listener\'s socket per session',
  );
  assert.equal(sessionFds(snap([]), one), FDS_PER_SESSION);
  assert.equal(sessionCap({}, 20000, 1), 20000 - 256);
  assert.equal(sessionCap({}, 20000, 2), Math.floor((20000 - 256) / 2));
  assert.equal(sessionCap({ max_sessions: 500 }, 20000, 1), 500);
});
