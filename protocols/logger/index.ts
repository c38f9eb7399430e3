/**
 * Logger: a pass-through virtual cluster that also writes `<log_prefix>: <chunk>` (or the bare
 * chunk with no prefix, no newline added) to `log_file` (`-` = stdout), as l7mp did. Unlike l7mp,
 * the file is opened once per cluster in append mode, not truncated by every session.
 * A file that cannot be opened or written (missing directory, permissions, disk full) is logged
 * and from then on skipped: traffic still passes through, and the worker never sees an unhandled
 * stream 'error' (which would kill the thread).
 * Its connections are datagram streams: each message passes through as one message, so a UDP →
 * Logger → UDP route keeps boundaries and is not counted as losing them (l7mp listed Logger as a
 * byte stream).
 */
import fs from 'node:fs';
import { Type } from '@sinclair/typebox';
import { defineProtocol } from '../core/define.ts';
import { replyCluster } from '../core/virtual.ts';

const LoggerSpec = Type.Object(
  {
    protocol: Type.Literal('Logger'),
    log_file: Type.Optional(Type.String({ minLength: 1, default: '-', description: 'File to append to; `-` is stdout.' })),
    log_prefix: Type.Optional(Type.String({ default: '', description: 'Written before each chunk as `<prefix>: `.' })),
  },
  { description: 'Logger: passes every message through unchanged and writes a copy to a file.' },
);

export const logger = defineProtocol({
  name: 'Logger',
  kind: 'byte',
  cluster: replyCluster(LoggerSpec, (cfg, ctx) => {
    const file = cfg.spec.log_file ?? '-';
    const prefix = cfg.spec.log_prefix ?? '';
    const out: NodeJS.WritableStream = file === '-' ? process.stdout : fs.createWriteStream(file, { flags: 'a' });
    let failed = false;
    if (out !== process.stdout) {
      out.on('error', (err: Error) => {
        failed = true;
        ctx.log.error({ cluster: cfg.name, log_file: file, err: err.message }, 'Logger cannot write its log file; passing traffic through without logging');
      });
    }
    const head = prefix === '' ? null : Buffer.from(`${prefix}: `);
    return {
      stage: () => (d) => {
        if (!failed) out.write(head === null ? d : Buffer.concat([head, d]));
        return d;
      },
      close() {
        if (out !== process.stdout) (out as fs.WriteStream).end();
      },
    };
  }),
});
