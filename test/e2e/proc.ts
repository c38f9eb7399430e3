/** Run `bin/l7mp-ts` as a child process and wait until it says it is ready. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

const root = path.resolve(import.meta.dirname, '..', '..');
export const BIN = path.join(root, 'bin', 'l7mp-ts');

export interface Proxy {
  proc: ChildProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Everything it wrote to stdout so far (Stdio and Logger clusters write there). */
  stdout(): string;
  /**
   * Signal it (default SIGINT: stop at once; SIGTERM drains first) and wait for exit; resolves
   * with the exit code and how long it took (ms). A proxy still up after {@link STOP_KILL_MS} is
   * sent SIGKILL (the code is then null).
   */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** How long `stop()` waits for the exit before SIGKILL, ms: longer than any drain a test runs. */
export const STOP_KILL_MS = 45_000;

/** Read an example config (YAML) so a test can rewrite its ports and paths. */
export function readExample(rel: string): any {
  return YAML.parse(fs.readFileSync(path.join(root, 'examples', rel), 'utf8'));
}

/**
 * Start the proxy on `config` (an object, written to `file` as YAML); resolve when it logs
 * "l7mp-ts ready". `timeoutMs` bounds a hang (a loaded machine starts slowly); it times nothing.
 */
export async function startProcess(config: unknown, file: string, args: string[] = [], timeoutMs = 30_000, opts: StartOptions = {}): Promise<Proxy> {
  fs.writeFileSync(file, YAML.stringify(config));
  return startConfigFile(file, args, timeoutMs, opts);
}

/** How to start the process. */
export interface StartOptions {
  /** Run it with this open-file limit (soft and hard, `ulimit -n` in the shell that execs it). */
  nofile?: number;
}

/** Start the proxy on a config file as it is; resolve when it logs "l7mp-ts ready". */
export async function startConfigFile(file: string, args: string[] = [], timeoutMs = 30_000, opts: StartOptions = {}): Promise<Proxy> {
  const argv = ['-c', file, '-l', 'info', ...args];
  const proc =
    opts.nofile === undefined
      ? spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit -n ${opts.nofile} && exec "$0" "$@"`, BIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const p: Proxy = {
    proc,
    stderr: () => err,
    stdout: () => out,
    stop: (signal = 'SIGINT') => {
      const t0 = Date.now();
      if (proc.exitCode !== null) return Promise.resolve({ code: proc.exitCode, ms: 0 });
      return new Promise((resolve) => {
        // A proxy that does not exit is killed, so a failed test cannot hang its file's cleanup.
        const kill = setTimeout(() => proc.kill('SIGKILL'), STOP_KILL_MS);
        proc.once('exit', (code) => {
          clearTimeout(kill);
          resolve({ code, ms: Date.now() - t0 });
        });
        proc.kill(signal);
      });
    },
  };
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`proxy not ready within ${timeoutMs} ms:\n${err}`));
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
      reject(new Error(`proxy exited with ${code} before it was ready:\n${err}`));
    });
  });
  return p;
}
