/**
 * Test fixtures for the fleet: a real nats-server with JetStream (its own store dir, a free
 * port, stoppable and restartable on the same port and store), fleet nodes (`bin/l7mp-ts --nats`
 * processes), and the fleet CLI as a process.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freeTcpPort, tmpDir } from '../helpers.ts';
import { BIN } from './proc.ts';

/**
 * Children still running when the test process exits are killed then. Their handles are unref'd,
 * so a test that failed before its cleanup cannot keep the test file's process alive (a hung file
 * would stall the whole `npm test`).
 */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  c.unref();
  for (const s of [c.stdin, c.stdout, c.stderr]) (s as { unref?: () => void } | null)?.unref?.();
  return c;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** Stop the server (SIGKILL by default: an outage, not a clean shutdown). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Start it again on the same port and store; resolves when it is ready. */
  start(): Promise<void>;
}

/** Start nats-server with JetStream on a free port (`args`: more server flags, e.g. `--user u --pass p`). */
export async function startNats(args: string[] = []): Promise<NatsServer> {
  // Killed when the test process exits, if a test did not stop it.
  const dir = tmpDir();
  const port = await freeTcpPort();
  let proc: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    const p = track(spawn('nats-server', ['-js', '-sd', path.join(dir, 'js'), '-a', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'ignore', 'pipe'] }));
    proc = p;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`nats-server not ready within 10 s:\n${log}`)), 10_000);
      p.stderr?.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('Server is ready')) {
          clearTimeout(t);
          resolve();
        }
      });
      p.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`nats-server exited with ${code}:\n${log}`));
      });
    });
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    start,
    stop: (signal = 'SIGKILL') => {
      const p = proc;
      proc = null;
      if (p === null || p.exitCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        // The ref'd timer also keeps the (unref'd) child's exit event observable.
        const t = setTimeout(() => p.kill('SIGKILL'), 5000);
        p.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        p.kill(signal);
      });
    },
  };
}

export interface Node {
  readonly id: string;
  proc: ChildProcess;
  stderr(): string;
  /** Signal it (default SIGINT: stop at once; SIGTERM drains first) and wait for exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Start `bin/l7mp-ts` with `args`; resolve when it logs "l7mp-ts ready". Killed when the test process exits. */
export async function startNode(id: string, args: string[], timeoutMs = 30_000): Promise<Node> {
  const proc = track(spawn(BIN, ['-l', 'info', '--node-id', id, '--workers', '1', '--telemetry-s', '0.5', ...args], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`node ${id} not ready within ${timeoutMs} ms:\n${err}`));
    }, timeoutMs);
    const check = (): void => {
      if (err.includes('l7mp-ts ready')) {
        clearTimeout(t);
        resolve();
      }
    };
    proc.stderr?.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`node ${id} exited with ${code} before it was ready:\n${err}`));
    });
  });
  return {
    id,
    proc,
    stderr: () => err,
    stop: (signal = 'SIGINT') => {
      if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
      return new Promise((resolve) => {
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        proc.once('exit', (code) => {
          clearTimeout(t);
          resolve(code);
        });
        proc.kill(signal);
      });
    },
  };
}

/** Run the CLI (`bin/l7mp-ts ARGS`) to completion. */
export function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(BIN, args, { timeout: timeoutMs }, (e, stdout, stderr) => {
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Spawn a long-running CLI process (e.g. `fleet controller`); killed when the test process exits. */
export function spawnTracked(args: string[]): ChildProcess {
  return track(spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
}
