/**
 * RTSP proxy end to end (issue 14): a real RTSP server (gst-rtsp-server, test/fixtures/rtsp-server.py)
 * and a real client (ffmpeg), each in a network namespace of its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetLab, rtspLabMissing } from './rtsp-env.ts';

const missing = rtspLabMissing();
const skip = missing !== null && process.env.CI !== 'true' ? missing : false;

test('lab: ffmpeg in one namespace plays the gst-rtsp-server of another over RTP/UDP and interleaved TCP', { skip }, async (t) => {
  const lab = new NetLab();
  t.after(() => lab.close());
  const a = lab.ns('A');
  const b = lab.ns('B');
  const l = lab.link(a, b);
  const srv = await lab.rtspServer(b, l.b, 8554);
  for (const tr of ['udp', 'tcp'] as const) {
    const r = await lab.ffmpeg(a, srv.url, tr, 30);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.frames >= 30, `${tr}: ${r.frames} frames`);
  }
  assert.equal(srv.plays(), 2);
});
