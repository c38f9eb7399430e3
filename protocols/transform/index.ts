/**
 * Transform (l7mp-ts only; l7mp had no session transforms, docs/l7mp-compat.md §11.1): a virtual
 * cluster, a bump in the wire, that runs the user's function
 * `(payload: Uint8Array, metadata) => Uint8Array | null` (or a Promise of it) on each message, in a
 * piscina pool of threads (protocols/transform/pool.ts), so CPU-heavy work (l7mp's "transcoder")
 * never blocks a worker's sockets. Results come back in send order per session. A function that
 * throws (or returns anything else) drops that message (`transform_error`); `null` drops it
 * (`transform_null`); one that runs past the cluster's `timeout` (default 1000 ms) is aborted, its
 * pool thread replaced, and dropped (`transform_timeout`); the session and the worker go on.
 *
 * `module` is checked when the config is validated: the file must exist and load, and `export`
 * must name a function; relative paths are resolved against the working directory and the
 * snapshot keeps the absolute path. Validation loads the module once in the main thread.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Type } from '@sinclair/typebox';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { Static } from '@sinclair/typebox';
import type { ClusterInstance } from '../types.ts';
import { defineProtocol } from '../core/define.ts';
import { acquirePool, releasePool } from './pool.ts';
import { pickExport } from './exports.ts';
import { TransformConnection, type TransformTarget } from './connection.ts';

/** Default per-message deadline (`timeout`). Unit: ms. */
export const DEFAULT_TIMEOUT_MS = 1000;

const TransformSpec = Type.Object(
  {
    protocol: Type.Literal('Transform'),
    module: Type.String({ minLength: 1, description: 'Path of a JavaScript or TypeScript module (relative to the working directory).', expect: 'a module path' }),
    export: Type.Optional(
      Type.String({ minLength: 1, default: 'default', description: 'Name of the exported function `(payload: Uint8Array, metadata) => Uint8Array | null`.', expect: 'an export name' }),
    ),
    timeout: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 3_600_000,
        default: DEFAULT_TIMEOUT_MS,
        description:
          'Per-message deadline, counted from when a pool thread starts running the function on the message (checked every 50 ms; loading the module is not counted). A message past it is dropped and counted (`transform_timeout`), the pool thread running it is terminated and replaced, and the session goes on with its next messages in order. A message still queued after 10 times this is dropped the same way. Unit: ms.',
        expect: 'an integer number of milliseconds 1..3600000',
      }),
    ),
  },
  { description: 'Transform: runs a function on every message in a thread pool; null drops the message.' },
);

const require = createRequire(import.meta.url);

/**
 * Resolve `module`, load it, check that `export` is a function.
 * @throws L7Error `L7_ERR_CONFIG_INVALID` naming `<path>.module` or `<path>.export` and the value.
 */
function prepare(spec: Static<typeof TransformSpec>, at: string): Static<typeof TransformSpec> {
  const abs = path.resolve(spec.module);
  const name = spec.export ?? 'default';
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigInvalid, `${at}.module: cannot read "${spec.module}" (${abs}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  if (!st.isFile()) throw new L7Error(ErrorCode.ConfigInvalid, `${at}.module: must be a file, got "${spec.module}" (${abs})`);
  let ns: unknown;
  try {
    ns = require(abs);
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigInvalid, `${at}.module: cannot load "${spec.module}": ${(e as Error).message}`, { cause: e });
  }
  const fn = name === 'default' && typeof ns === 'function' ? ns : ns !== null && typeof ns === 'object' ? pickExport(ns as Record<string, unknown>, name) : undefined;
  if (typeof fn !== 'function') {
    throw new L7Error(ErrorCode.ConfigInvalid, `${at}.export: module "${spec.module}" has no function named "${name}" (got ${fn === null ? 'null' : typeof fn})`);
  }
  return { ...spec, module: abs, export: name };
}

export const transform = defineProtocol({
  name: 'Transform',
  kind: 'datagram',
  cluster: {
    schema: TransformSpec,
    virtual: true,
    prepare,
    events: {
      transform_error: { drop: true, help: 'Messages dropped because the function threw or returned something else than bytes or null.' },
      transform_null: { drop: true, help: 'Messages dropped because the function returned null.' },
      transform_overflow: { drop: true, help: 'Messages dropped because the stage had 4096 messages in flight.' },
      // A drop too (its message is counted in the stage's drops), kept an event as it always was.
      transform_timeout: { drop: false, help: 'Messages dropped because they ran (or waited in the pool) past the timeout; the pool thread running one is replaced.' },
    },
    create: (cfg, ctx): ClusterInstance => {
      const target: TransformTarget = {
        cluster: cfg.name,
        module: path.resolve(cfg.spec.module),
        export: cfg.spec.export ?? 'default',
        pool: acquirePool(),
        ctx,
        timeoutMs: cfg.spec.timeout ?? DEFAULT_TIMEOUT_MS,
      };
      let closed = false;
      return {
        connect: (session) => {
          if (closed) return Promise.reject(new L7Error(ErrorCode.UpstreamConnect, `Transform cluster "${cfg.name}" is closed`));
          // Each connection holds the pool too: a session keeps its stage when its cluster's spec
          // changes (sessions keep their route), so the pool must outlive the old cluster instance.
          acquirePool();
          // The function sees a snapshot of the metadata as it was when the stage connected.
          return Promise.resolve(new TransformConnection(target, structuredClone(session.metadata) as Record<string, unknown>, releasePool));
        },
        close() {
          if (closed) return;
          closed = true;
          releasePool();
        },
      };
    },
  },
});
