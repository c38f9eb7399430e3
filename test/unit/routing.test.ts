/**
 * routing/: rule lookup (docs/l7mp-compat.md §4.3), metadata paths (§4.2) and load balancers (§4.5),
 * on tables built from normalized snapshots. No sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalize } from '../../cluster-config/normalize.ts';
import { RoutingTable } from '../../routing/table.ts';
import { getAtPath, setAtPath } from '../../routing/paths.ts';
import { defaultKey, makeLoadBalancer } from '../../routing/loadbalancer.ts';
import type { ClusterConfig } from '../../cluster-config/snapshot.ts';
import { ErrorCode } from '../../common/errors.ts';

function table(doc: unknown): RoutingTable {
  return new RoutingTable(normalize(doc));
}

/** UDP-listener metadata as l7mp builds it (§3.1). */
function udpMeta(src: string, sport: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { IP: { src_addr: src, dst_addr: '0.0.0.0' }, UDP: { src_port: sport, dst_port: 9000 }, ...extra };
}

const echo = (name: string) => ({ name, spec: { protocol: 'Echo' } });

/** Four clusters and a route to each, so a lookup's result names which rule won. */
const base = {
  clusters: [echo('a'), echo('b'), echo('c'), echo('d')],
  routes: [
    { name: 'to-a', destination: 'a' },
    { name: 'to-b', destination: 'b' },
    { name: 'to-c', destination: 'c' },
    { name: 'to-d', destination: 'd' },
  ],
};

function lookupError(t: RoutingTable, listener: string, meta: Record<string, unknown>, session = 's'): { code: string; message: string } {
  try {
    t.lookup(listener, session, meta);
  } catch (e) {
    return e as { code: string; message: string };
  }
  assert.fail('lookup did not throw');
}

test('lookup: rules are tried in order and the first match wins; a rule without match is a wildcard', () => {
  const t = table({
    ...base,
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port: 9000 },
        rules: [
          { name: 'r-port', match: { op: 'test', path: '/UDP/src_port', value: 1000 }, action: { route: 'to-a' } },
          { name: 'r-net', match: { op: 'starts', path: '/IP/src_addr', value: '10.' }, action: { route: 'to-b' } },
          { name: 'r-both', match: { op: 'and', apply: [{ op: 'starts', path: '/IP/src_addr', value: '10.' }, { op: 'less', path: '/UDP/src_port', value: 10 }] }, action: { route: 'to-c' } },
          { name: 'r-any', match: '*', action: { route: 'to-d' } },
        ],
      },
    ],
  });
  const pick = (src: string, port: number) => t.lookup('l', 's', udpMeta(src, port)).route.name;
  assert.equal(pick('10.0.0.1', 1000), 'to-a'); // matches r-port and r-net: the first wins
  assert.equal(pick('10.0.0.1', 5), 'to-b'); // r-both also matches, but r-net comes first
  assert.equal(pick('192.168.0.1', 2000), 'to-d');
  const m = t.lookup('l', 's', udpMeta('10.1.1.1', 7));
  assert.equal(m.via, 'rulelist:l-RuleList-0/rule:r-net');
  assert.deepEqual(m.route, { name: 'to-b', destination: 'b', ingress: [], egress: [], retry: { retry_on: 'never', num_retries: 1, timeout: 2000 } });
});

test('lookup: no match fails with L7_ERR_ROUTE_NOT_FOUND and l7mp\'s message; an empty rule list never matches', () => {
  const t = table({
    ...base,
    listeners: [
      { name: 'l', spec: { protocol: 'UDP', port: 9000 }, rules: [{ match: { op: 'test', path: '/UDP/src_port', value: 1 }, action: { route: 'to-a' } }] },
      { name: 'empty', spec: { protocol: 'UDP', port: 9001 }, rules: [] },
    ],
  });
  const name = 'UDP:127.0.0.1:5555-0.0.0.0:9000-0';
  const e = lookupError(t, 'l', udpMeta('127.0.0.1', 5555), name);
  assert.equal(e.code, ErrorCode.RouteNotFound);
  assert.equal(e.message, `No route for session "${name}"`);
  assert.equal((e as unknown as { status: number }).status, 404);
  assert.equal(lookupError(t, 'empty', udpMeta('127.0.0.1', 1), 'x').message, 'No route for session "x"');
  // An invalid predicate (unknown op) evaluates to false, as json-predicate does.
  const t2 = table({ ...base, listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 }, rules: [{ match: { op: 'nonsense', path: '/a' }, action: { route: 'to-a' } }] }] });
  assert.equal(lookupError(t2, 'l', { a: 1 }).code, ErrorCode.RouteNotFound);
});

test('lookup: apply jumps to another rule list; the jumping rule\'s rewrite is ignored; no fall-back; cycles end', () => {
  const t = table({
    ...base,
    listeners: [
      { name: 'l', spec: { protocol: 'UDP', port: 9000 }, rules: 'main' },
      { name: 'loop', spec: { protocol: 'UDP', port: 9001 }, rules: 'ping' },
    ],
    rulelists: [
      { name: 'main', rules: ['jump', 'fallback'] },
      { name: 'sub', rules: [{ name: 'sub-1', match: { op: 'test', path: '/UDP/src_port', value: 1 }, action: { route: 'to-b' } }] },
      { name: 'ping', rules: [{ action: { apply: 'pong' } }] },
      { name: 'pong', rules: [{ action: { apply: 'ping' } }] },
    ],
    rules: [
      { name: 'jump', match: { op: 'starts', path: '/IP/src_addr', value: '10.' }, action: { apply: 'sub', rewrite: [{ path: '/jumped', value: true }], route: 'to-c' } },
      { name: 'fallback', action: { route: 'to-a' } },
    ],
  });
  const meta = udpMeta('10.0.0.1', 1);
  const m = t.lookup('l', 's', meta);
  assert.equal(m.route.name, 'to-b');
  assert.equal(m.via, 'rulelist:sub/rule:sub-1');
  assert.equal(meta.jumped, undefined);
  // The jump target has no match: no route, even though "fallback" in the calling list would match.
  assert.equal(lookupError(t, 'l', udpMeta('10.0.0.1', 2)).code, ErrorCode.RouteNotFound);
  // Not jumping: the calling list goes on.
  assert.equal(t.lookup('l', 's', udpMeta('192.168.1.1', 2)).route.name, 'to-a');
  // A cycle does not recurse without bound (l7mp did): it ends as "no route".
  const e = lookupError(t, 'loop', udpMeta('1.1.1.1', 1), 'cyc');
  assert.equal(e.code, ErrorCode.RouteNotFound);
  assert.equal(e.message, 'No route for session "cyc"');
});

test('lookup: one rule in two rule lists names the list it was reached through; a rule\'s match is one object for all its sessions, its rewrites still per session', () => {
  const t = table({
    ...base,
    listeners: [
      { name: 'l1', spec: { protocol: 'UDP', port: 9000 }, rules: 'one' },
      { name: 'l2', spec: { protocol: 'UDP', port: 9001 }, rules: 'two' },
    ],
    rulelists: [
      { name: 'one', rules: ['shared'] },
      { name: 'two', rules: ['shared'] },
    ],
    rules: [{ name: 'shared', action: { route: 'to-d', rewrite: [{ path: '/tag', value: 'x' }] } }],
  });
  const vias = ['l1', 'l2', 'l1', 'l2'].map((l) => t.lookup(l, 's', udpMeta('1.1.1.1', 1)).via);
  assert.deepEqual(vias, ['rulelist:one/rule:shared', 'rulelist:two/rule:shared', 'rulelist:one/rule:shared', 'rulelist:two/rule:shared']);
  const a = udpMeta('1.1.1.1', 1);
  const b = udpMeta('2.2.2.2', 2);
  assert.equal(t.lookup('l1', 'a', a), t.lookup('l1', 'b', b));
  assert.equal(a.tag, 'x');
  assert.equal(b.tag, 'x');
});

test('lookup: rewrites are applied in order, in place, before the route is resolved (the load balancer key sees them)', () => {
  const t = table({
    clusters: [
      {
        name: 'up',
        spec: { protocol: 'UDP', port: 5000 },
        endpoints: [{ name: 'e1', spec: { address: '10.0.0.1' } }, { name: 'e2', spec: { address: '10.0.0.2' } }, { name: 'e3', spec: { address: '10.0.0.3' } }],
        loadbalancer: { policy: 'ConsistentHash', key: '/HTTP/headers/x-user' },
      },
    ],
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port: 9000 },
        rules: [
          {
            match: { op: 'test', path: '/UDP/src_port', value: 1 },
            action: {
              rewrite: [
                { path: '/HTTP/headers/x-user', value: 'first' },
                { path: '/HTTP/headers/x-user', value: 'alice' },
                { path: '/tags', value: { list: [1, 2] } },
              ],
              route: { name: 'r', destination: 'up' },
            },
          },
        ],
      },
    ],
  });
  const meta = udpMeta('127.0.0.1', 1);
  const m = t.lookup('l', 's', meta);
  assert.equal(m.route.name, 'r');
  assert.deepEqual(meta.HTTP, { headers: { 'x-user': 'alice' } });
  assert.deepEqual(meta.tags, { list: [1, 2] });
  // The rewritten value is deep-copied out of the frozen config: sessions may change their copy.
  assert.ok(!Object.isFrozen(meta.tags));
  const lb = t.balancer('up');
  assert.ok(lb !== undefined);
  // The pick depends on the rewritten key only, not on the source address.
  const e = lb.pick(meta, 's');
  for (let p = 2; p < 50; p++) assert.equal(lb.pick({ ...udpMeta('192.0.2.1', p), HTTP: { headers: { 'x-user': 'alice' } } }, 'other')?.name, e?.name);
  // A session that matches no rule gets no rewrite.
  const other = udpMeta('127.0.0.1', 2);
  assert.equal(lookupError(t, 'l', other).code, ErrorCode.RouteNotFound);
  assert.equal(other.HTTP, undefined);
});

test('lookup: a missing rulelist, rule or route is an error naming it, even if a later rule would match', () => {
  const t = table({
    ...base,
    listeners: [
      { name: 'nolist', spec: { protocol: 'UDP', port: 9000 }, rules: 'absent' },
      { name: 'norule', spec: { protocol: 'UDP', port: 9001 }, rules: 'list' },
      { name: 'noroute', spec: { protocol: 'UDP', port: 9002 }, rules: [{ action: { route: 'ghost' } }] },
      { name: 'badjump', spec: { protocol: 'UDP', port: 9003 }, rules: [{ action: { apply: 'void' } }] },
    ],
    rulelists: [{ name: 'list', rules: ['missing-rule', { action: { route: 'to-a' } }] }],
  });
  const cases: Array<[string, string]> = [
    ['nolist', 'Cannot find RuleList "absent"'],
    ['norule', 'Cannot find named rule "missing-rule" in RuleList "list"'],
    ['noroute', 'Cannot find Route "ghost"'],
    ['badjump', 'Cannot find RuleList "void"'],
    ['no-such-listener', 'Cannot find Listener "no-such-listener"'],
  ];
  for (const [listener, message] of cases) {
    const e = lookupError(t, listener, udpMeta('1.1.1.1', 1));
    assert.equal(e.code, ErrorCode.ConfigUnknownRef, listener);
    assert.equal(e.message, message);
  }
});

test('getAtPath: leading and trailing slashes optional, "/" is the whole object, missing is undefined', () => {
  const o = { a: { b: [1, { c: 2 }], n: null, z: 0 }, 'x-y': 'v' };
  assert.equal(getAtPath(o, '/a/b/1/c'), 2);
  assert.equal(getAtPath(o, 'a/b/1/c'), 2);
  assert.equal(getAtPath(o, '/a/b/1/c/'), 2);
  assert.equal(getAtPath(o, '/a/b/0'), 1);
  assert.equal(getAtPath(o, '/x-y'), 'v');
  assert.equal(getAtPath(o, '/a/z'), 0);
  assert.equal(getAtPath(o, '/a/n'), null);
  assert.equal(getAtPath(o, '/'), o);
  assert.equal(getAtPath(o, ''), o);
  assert.equal(getAtPath(o, '/a/missing'), undefined);
  assert.equal(getAtPath(o, '/a/missing/deeper'), undefined);
  assert.equal(getAtPath(o, '/a/n/deeper'), undefined);
  assert.equal(getAtPath(o, '/x-y/0/1'), undefined); // through a string
  // Only own properties: a prototype's members are not metadata.
  assert.equal(getAtPath(o, '/constructor'), undefined);
  assert.equal(getAtPath(o, '/__proto__'), undefined);
  assert.equal(getAtPath(o, '/a/toString'), undefined);
});

test('setAtPath: creates intermediates, indexes arrays, deep-copies objects, "/" replaces the whole object', () => {
  const o: Record<string, unknown> = { keep: 1, arr: [1, 2, 3] };
  assert.equal(setAtPath(o, '/a/b/c', 'x'), true);
  assert.deepEqual(o.a, { b: { c: 'x' } });
  assert.equal(setAtPath(o, 'a/b/d/', 5), true); // slashes optional
  assert.deepEqual(o.a, { b: { c: 'x', d: 5 } });
  assert.equal(setAtPath(o, '/arr/1', 'two'), true);
  assert.deepEqual(o.arr, [1, 'two', 3]);
  assert.equal(setAtPath(o, '/n/0/k', true), true); // numeric segment on a missing parent: a property
  assert.deepEqual(o.n, { 0: { k: true } });
  const v = { deep: { list: [1] } };
  assert.equal(setAtPath(o, '/copy', v), true);
  v.deep.list.push(2);
  assert.deepEqual(o.copy, { deep: { list: [1] } });
  assert.equal(setAtPath(o, '/keep/below', 1), false); // through a number
  assert.equal(o.keep, 1);
  assert.equal(setAtPath(o, '/', 'scalar'), false);
  assert.equal(setAtPath(o, '/', { fresh: true }), true);
  assert.deepEqual(o, { fresh: true });
});

test('setAtPath refuses __proto__, constructor and prototype segments (no prototype pollution)', () => {
  const o: Record<string, unknown> = {};
  assert.equal(setAtPath(o, '/__proto__/polluted', 'yes'), false);
  assert.equal(setAtPath(o, '/constructor/prototype/polluted', 'yes'), false);
  assert.equal(setAtPath(o, '/a/__proto__', { polluted: 'yes' }), false);
  assert.equal(setAtPath(o, '/prototype', 1), false);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(o, {});
  // Through a rewrite rule as well.
  const t = table({ ...base, listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 1 }, rules: [{ action: { rewrite: [{ path: '/__proto__/polluted', value: 'yes' }], route: 'to-a' } }] }] });
  const meta = udpMeta('1.1.1.1', 1);
  assert.equal(t.lookup('l', 's', meta).route.name, 'to-a');
  assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getPrototypeOf(meta), Object.prototype);
});

function cluster(policy: string, eps: Array<[string, string, number]>, key?: string): ClusterConfig {
  return {
    name: 'c',
    spec: { protocol: 'UDP', port: 1 },
    endpoints: eps.map(([name, address, weight]) => ({ name, spec: { address }, weight })),
    loadbalancer: { policy: policy as ClusterConfig['loadbalancer']['policy'], ...(key === undefined ? {} : { key }) },
  };
}

test('load balancer: Trivial always picks the first endpoint; no endpoints gives null', () => {
  const lb = makeLoadBalancer(cluster('Trivial', [['e1', '10.0.0.1', 1], ['e2', '10.0.0.2', 5]]));
  for (let p = 1; p < 100; p++) assert.equal(lb.pick(udpMeta('127.0.0.1', p), `s${p}`)?.name, 'e1');
  assert.equal(makeLoadBalancer(cluster('Trivial', [])).pick({}, 's'), null);
  assert.equal(makeLoadBalancer(cluster('ConsistentHash', [])).pick({}, 's'), null);
});

test('load balancer: ConsistentHash is sticky per key, spreads keys, and agrees across separately built balancers', () => {
  const eps: Array<[string, string, number]> = [['e1', '10.0.0.1', 1], ['e2', '10.0.0.2', 1], ['e3', '10.0.0.3', 1]];
  const lb1 = makeLoadBalancer(cluster('ConsistentHash', eps, '/UDP/src_port'));
  const lb2 = makeLoadBalancer(cluster('HashRing', eps, '/UDP/src_port'));
  const seen = new Map<string, number>();
  for (let p = 1000; p < 1300; p++) {
    const a = lb1.pick(udpMeta('127.0.0.1', p), 'x')?.name as string;
    assert.equal(lb1.pick(udpMeta('192.0.2.9', p), 'y')?.name, a); // only the key counts
    assert.equal(lb2.pick(udpMeta('127.0.0.1', p), 'z')?.name, a); // same key, another balancer: same endpoint
    seen.set(a, (seen.get(a) ?? 0) + 1);
  }
  assert.equal(seen.size, 3, JSON.stringify([...seen]));
  for (const n of seen.values()) assert.ok(n > 30, JSON.stringify([...seen]));
});

test('load balancer: weight 3 vs 1 over 4000 keys gives roughly 3:1', () => {
  const lb = makeLoadBalancer(cluster('ConsistentHash', [['heavy', '10.0.0.1', 3], ['light', '10.0.0.2', 1]], '/k'));
  let heavy = 0;
  for (let i = 0; i < 4000; i++) if (lb.pick({ k: `key-${i}` }, 's')?.name === 'heavy') heavy++;
  const ratio = heavy / (4000 - heavy);
  assert.ok(ratio > 2.2 && ratio < 4, `heavy:light = ${heavy}:${4000 - heavy}`);
});

test('load balancer: without a key (or no value at it) the downstream address:port is hashed', () => {
  assert.equal(defaultKey(udpMeta('127.0.0.1', 4242), 's'), '127.0.0.1:4242');
  assert.equal(defaultKey({ IP: { src_addr: '::1' }, TCP: { src_port: 80 } }, 's'), '::1:80');
  assert.equal(defaultKey({ UNIX: { filename: '/x' } }, 'UNIX:l-0'), 'UNIX:l-0');
  const eps: Array<[string, string, number]> = [['e1', '10.0.0.1', 1], ['e2', '10.0.0.2', 1]];
  const nokey = makeLoadBalancer(cluster('ConsistentHash', eps));
  const missing = makeLoadBalancer(cluster('ConsistentHash', eps, '/no/such/path'));
  const explicit = makeLoadBalancer(cluster('ConsistentHash', eps, '/k'));
  const names = new Set<string>();
  for (let p = 1; p < 200; p++) {
    const m = udpMeta('127.0.0.1', p);
    const a = nokey.pick(m, `s${p}`)?.name as string;
    names.add(a);
    assert.equal(nokey.pick(m, 'another-session')?.name, a); // a client sticks across sessions
    assert.equal(missing.pick(m, 'x')?.name, a);
    assert.equal(explicit.pick({ k: `127.0.0.1:${p}` }, 'x')?.name, a);
  }
  assert.equal(names.size, 2);
  // Non-string key values are hashed by their JSON form.
  assert.equal(explicit.pick({ k: { a: 1 } }, 'x')?.name, explicit.pick({ k: '{"a":1}' }, 'y')?.name);
});

test('lookup: a predicate that throws on a peer\'s value (contains/starts on a number, an object, null) does not match; later rules still do', () => {
  const t = table({
    ...base,
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port: 9000 },
        rules: [
          { name: 'r-contains', match: { op: 'contains', path: '/JSONSocket/user', value: 'adm' }, action: { route: 'to-a' } },
          { name: 'r-starts', match: { op: 'starts', path: '/JSONSocket/user/x', value: 'a' }, action: { route: 'to-b' } },
          { name: 'r-any', match: '*', action: { route: 'to-d' } },
        ],
      },
    ],
  });
  const pick = (user: unknown) => t.lookup('l', 's', udpMeta('1.2.3.4', 5, { JSONSocket: { user } })).route.name;
  assert.equal(pick('admin'), 'to-a');
  for (const hostile of [5, { toString: 1 }, [1, 2], null, JSON.parse('{"__proto__":{"x":"a"}}') as unknown, { x: 7 }]) assert.equal(pick(hostile), 'to-d', JSON.stringify(hostile));
  assert.equal(pick({ x: 'abc' }), 'to-b');
});
