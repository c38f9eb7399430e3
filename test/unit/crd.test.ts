/** The CRD compiler (fleet/crd.ts) on its own: the seed task, reference forms, selectors, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { compile, fqn, parseResources, type InventoryNode } from '../../fleet/crd.ts';
import { normalize } from '../../cluster-config/normalize.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const seedDocs = (): unknown[] => YAML.parseAllDocuments(fs.readFileSync(path.join(root, 'examples', 'seed-task', 'crds.yaml'), 'utf8')).map((d) => d.toJS());
const fleet: InventoryNode[] = [
  { nodeId: 'gw', labels: { app: 'l7mp-ingress' }, address: '10.0.0.1' },
  { nodeId: 'tc-1', labels: { app: 'transcoder' }, address: '10.0.0.2' },
  { nodeId: 'tc-2', labels: { app: 'transcoder' }, address: '10.0.0.3' },
  { nodeId: 'wk', labels: { app: 'worker' }, address: '10.0.0.4' },
];
const T = (n: string) => `/l7mp.io/v1/Target/default/${n}`;
const VS = (n: string) => `/l7mp.io/v1/VirtualService/default/${n}`;

test('seed task CRDs compile per node; each result is a valid strict l7mp config', () => {
  const out = compile(parseResources(seedDocs(), 'crds.yaml'), fleet);
  assert.deepEqual([...out.keys()], ['gw', 'tc-1', 'tc-2', 'wk']);
  const gw = out.get('gw')!.config as any;
  assert.deepEqual(gw.listeners, [{ name: VS('gateway-vsvc'), spec: { protocol: 'UDP', port: 9001 }, rules: `${VS('gateway-vsvc')}-RuleList` }]);
  assert.deepEqual(gw.rulelists[0].rules, [{ action: { route: { destination: T('udp-cluster'), ingress: [T('websocket-cluster')] } } }]);
  const byName = new Map<string, any>(gw.clusters.map((c: any) => [c.name, c]));
  // Endpoint selectors: one endpoint per matching node at the address it reports.
  assert.deepEqual(byName.get(T('websocket-cluster')), {
    name: T('websocket-cluster'),
    spec: { protocol: 'WebSocket', port: 8888 },
    endpoints: [
      { name: `${T('websocket-cluster')}/tc-1`, spec: { address: '10.0.0.2' } },
      { name: `${T('websocket-cluster')}/tc-2`, spec: { address: '10.0.0.3' } },
    ],
    loadbalancer: { policy: 'ConsistentHash' },
  });
  assert.deepEqual(byName.get(T('udp-cluster')).endpoints, [{ name: `${T('udp-cluster')}/wk`, spec: { address: '10.0.0.4' } }]);
  // linkedVirtualService: the linked listener's spec, endpoints from the linked selector.
  assert.deepEqual(byName.get(T('ws-svc')), {
    name: T('ws-svc'),
    spec: { protocol: 'WebSocket', port: 8888 },
    endpoints: [
      { name: `${T('ws-svc')}/tc-1`, spec: { address: '10.0.0.2' } },
      { name: `${T('ws-svc')}/tc-2`, spec: { address: '10.0.0.3' } },
    ],
  });
  const tc = out.get('tc-1')!.config as any;
  assert.deepEqual(tc.listeners[0].spec, { protocol: 'WebSocket', port: 8888 });
  assert.deepEqual(tc.clusters, [{ name: T('uds-cluster'), spec: { protocol: 'UnixDomainSocket' }, endpoints: [{ spec: { address: '/tmp/uds-echo.sock' } }] }]);
  assert.deepEqual(out.get('wk'), { config: { clusters: [], listeners: [], rulelists: [] }, resources: [] });
  assert.deepEqual(out.get('tc-2')!.resources, [T('uds-cluster'), VS('transcoder-vsvc')]);
  for (const c of out.values()) normalize(c.config, { strict: true });
});

const vs = (name: string, route: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'l7mp.io/v1',
  kind: 'VirtualService',
  metadata: { name, namespace: 'ns1' },
  spec: { selector: { matchLabels: { app: 'gw' } }, listener: { spec: { UDP: { port: 1 } }, rules: [{ action: { route } }] }, ...extra },
});
const target = (name: string, ns = 'ns1') => ({ apiVersion: 'l7mp.io/v1', kind: 'Target', metadata: { name, namespace: ns }, spec: { selector: { matchLabels: { app: 'gw' } }, cluster: { spec: { UDP: { port: 2 } }, endpoints: [{ spec: { address: '1.2.3.4' } }] } } });
const gwNode: InventoryNode[] = [{ nodeId: 'g', labels: { app: 'gw' }, address: '127.0.0.1' }];

test('references: fqn, selfLink and bare names resolve; inline clusters and rewrites convert', () => {
  const docs = [
    target('t1'),
    target('t2', 'other'),
    vs('a', {
      destinationRef: '/l7mp.io/v1/Target/ns1/t1',
      ingress: [{ clusterRef: '/apis/l7mp.io/v1/namespaces/other/targets/t2' }, { clusterRef: 't1' }, { cluster: { spec: { JSONSocket: { transport: { UDP: { port: 5 } } } }, endpoints: [{ spec: { address: '127.0.0.1' } }] } }],
    }),
  ];
  const c = compile(parseResources(docs, 'x'), gwNode).get('g')!.config as any;
  const route = c.rulelists[0].rules[0].action.route;
  assert.equal(route.destination, '/l7mp.io/v1/Target/ns1/t1');
  assert.deepEqual(route.ingress.slice(0, 2), ['/l7mp.io/v1/Target/other/t2', '/l7mp.io/v1/Target/ns1/t1']);
  assert.deepEqual(route.ingress[2].spec, { protocol: 'JSONSocket', transport: { protocol: 'UDP', port: 5 } });
  assert.equal(fqn(parseResources([target('t1')], 'x')[0]!), '/l7mp.io/v1/Target/ns1/t1');

  const rw = vs('b', { destinationRef: 't1' });
  (rw.spec.listener.rules[0] as any).action.rewrite = [{ path: '/labels/x', valueStr: '{"a":1}' }];
  const c2 = compile(parseResources([target('t1'), rw], 'x'), gwNode).get('g')!.config as any;
  assert.deepEqual(c2.rulelists[0].rules[0].action.rewrite, [{ path: '/labels/x', value: { a: 1 } }]);
});

test('a Rule CRD is inserted into a VirtualService rulelist at its position', () => {
  const rule = {
    apiVersion: 'l7mp.io/v1',
    kind: 'Rule',
    metadata: { name: 'r', namespace: 'ns1' },
    spec: { selector: { matchLabels: { app: 'gw' } }, rulelist: '/l7mp.io/v1/VirtualService/ns1/a-RuleList', position: 0, rule: { match: { op: 'test', path: '/IP/src_addr', value: '127.0.0.1' }, action: { route: { destinationRef: 't1' } } } },
  };
  const c = compile(parseResources([target('t1'), vs('a', { destinationRef: 't1' }), rule], 'x'), gwNode).get('g')!.config as any;
  assert.equal(c.rulelists[0].rules.length, 2);
  assert.equal(c.rulelists[0].rules[0].name, '/l7mp.io/v1/Rule/ns1/r');
  normalize(c, { strict: true });
  const orphan = { ...rule, spec: { ...rule.spec, rulelist: 'nope' } };
  assert.throws(() => compile(parseResources([target('t1'), orphan], 'x'), gwNode), /Rule ns1\/r: spec\.rulelist: RuleList "nope" is not compiled for node g/);
});

test('errors name the resource, the field and the value', () => {
  const cases: Array<[unknown[], RegExp]> = [
    [[{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: {} }], /^f\[0\]\.apiVersion: must be l7mp\.io\/v1, got "v1"/],
    [[{ apiVersion: 'l7mp.io/v1', kind: 'Route', metadata: { name: 'x' }, spec: {} }], /^f\[0\]\.kind: must be one of VirtualService, Target, Rule, got "Route"/],
    [[{ apiVersion: 'l7mp.io/v1', kind: 'Target', metadata: { name: 'Bad_Name' }, spec: {} }], /^f\[0\]\.metadata\.name: must be a DNS-1123 name/],
    [[{ apiVersion: 'l7mp.io/v1', kind: 'Target', metadata: { name: 't' }, spec: { selector: {} } }], /^Target default\/t: spec: needs exactly one of cluster and linkedVirtualService/],
    [[vs('a', { destinationRef: 'missing' })], /^VirtualService ns1\/a: spec\.listener\.rules\[0\]\.action\.route\.destinationRef: Target "ns1\/missing" is not defined/],
    [[target('t1'), vs('a', { destinationRef: '/apis/l7mp.io/v1/namespaces/ns1/services/t1' })], /destinationRef: must be \/l7mp\.io\/v1\/Target\/<namespace>\/<name>/],
    [[{ ...target('t1'), spec: { selector: {}, cluster: { spec: { UDP: { port: 1 }, TCP: { port: 2 } } } } }], /^Target ns1\/t1: spec\.cluster\.spec: must have exactly one protocol key/],
    [[{ ...target('t1'), spec: { selector: { matchService: 'x' }, cluster: { spec: { UDP: {} } } } }], /^Target ns1\/t1: spec\.selector\.matchService: is not supported/],
    [[target('t1'), target('t1')], /^f\[1\]\.metadata\.name: Target defined twice in f/],
  ];
  for (const [docs, re] of cases) assert.throws(() => compile(parseResources(docs, 'f'), gwNode), (e: Error) => re.test(e.message) || assert.fail(`${e.message} !~ ${re}`));
});
