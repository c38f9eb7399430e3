import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cell, markdownTable, num, ratio, ratioToRef, stats, svgChart, wrap } from '../../bench/report.ts';
import type { Figure, RowData } from '../../bench/report.ts';

const pps: Figure = { key: 'pps', header: 'pps', fmt: num, higherIsBetter: true, chart: 'UDP pps' };
const lat: Figure = { key: 'lat', header: 'RTT µs', fmt: (x) => x.toFixed(1), higherIsBetter: false, chart: '1 / RTT' };

function row(name: string, samples: Record<string, number[]>, extra: Partial<RowData> = {}): RowData {
  return { name, unavailable: null, samples, missing: {}, notes: [], ...extra };
}

test('stats: median of odd and even counts, min and max; null when empty', () => {
  assert.deepEqual(stats([3, 1, 2]), { med: 2, min: 1, max: 3 });
  assert.deepEqual(stats([4, 1, 2, 3]), { med: 2.5, min: 1, max: 4 });
  assert.equal(stats([]), null);
});

test('num: three significant digits with k and M', () => {
  assert.equal(num(157_234), '157k');
  assert.equal(num(8_150_000), '8.15M');
  assert.equal(num(12_345), '12.3k');
  assert.equal(num(3936), '3936');
  assert.equal(num(8.194), '8.19');
  assert.equal(num(0), '0');
});

test('ratioToRef is > 1 when better than the reference, for both directions', () => {
  assert.equal(ratioToRef(pps, 200, 100), 2);
  assert.equal(ratioToRef(lat, 20, 40), 2);
  assert.equal(ratioToRef(lat, 0, 40), null);
  assert.equal(ratioToRef(pps, 10, undefined), null);
  assert.equal(ratio(1.234), '1.23');
  assert.equal(ratio(0.004321), '0.004');
});

test('cell: median, range with several samples, ratio to the reference', () => {
  assert.equal(cell(pps, [110_000, 100_000, 120_000], 100_000), '110k [100k–120k] 1.10×');
  assert.equal(cell(lat, [30], 60), '30.0 2.00×');
  assert.equal(cell(lat, []), '-');
});

test('markdownTable: one row per system, ratios to nginx, reasons for what is missing or not run', () => {
  const rows = [
    row('nginx', { pps: [150_000], lat: [30] }),
    row('l7mp-ts', { pps: [120_000, 100_000, 110_000], lat: [40] }, { notes: ['1 worker'] }),
    row('node-relay', { pps: [90_000] }, { missing: { lat: 'no echo | pipe' } }),
    row('l7mp-ts offload', {}, { unavailable: 'offload unavailable: not built' }),
  ];
  const lines = markdownTable([pps, lat], rows, 'nginx').trim().split('\n');
  assert.equal(lines[0], '| system | pps | RTT µs | notes |');
  assert.equal(lines[1], '|---|---|---|---|');
  assert.equal(lines[2], '| nginx | 150k | 30.0 |  |');
  assert.equal(lines[3], '| l7mp-ts | 110k [100k–120k] 0.73× | 40.0 0.75× | 1 worker |');
  assert.equal(lines[4], '| node-relay | 90.0k 0.60× | - | RTT µs: no echo \\| pipe |');
  assert.equal(lines[5], '| l7mp-ts offload | - | - | **not run:** offload unavailable: not built |');
});

test('svgChart: one bar per shown system and charted figure, skipped and unavailable rows left out', () => {
  const rows = [
    row('direct', { pps: [250_000], lat: [12] }),
    row('nginx', { pps: [150_000], lat: [30] }),
    row('l7mp-ts', { pps: [300_000], lat: [60] }),
    row('l7mp', {}, { unavailable: 'not installed' }),
  ];
  const svg = svgChart([pps, lat], rows, 'nginx', { title: 'T <1>', subtitle: 'S', skip: ['direct'] });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.equal(svg.match(/<rect [^>]*><title>/g)?.length, 4);
  assert.match(svg, /<title>l7mp-ts: pps 2.00× nginx<\/title>/);
  assert.match(svg, /<title>l7mp-ts: RTT µs 0.50× nginx<\/title>/);
  assert.ok(!svg.includes('direct') && !svg.includes('>l7mp<'));
  assert.equal(svg.match(/<rect [^>]*width="14"/g)?.length, 2); // legend: nginx, l7mp-ts
  assert.ok(svg.includes('T &lt;1&gt;'));
  assert.ok(svg.includes('Not run: l7mp: not installed'));
});

test('wrap: splits labels at spaces', () => {
  assert.deepEqual(wrap('1 / memory per session', 16), ['1 / memory per', 'session']);
  assert.deepEqual(wrap('UDP pps', 16), ['UDP pps']);
});
