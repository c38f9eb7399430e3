/**
 * Logging with pino at l7mp's levels. Every thread makes its own logger writing synchronously to
 * fd 2 (stderr, as l7mp did), so a worker's log line never waits on the main thread.
 *
 * Levels (l7mp / npmlog names, mapped on pino's scale): silly 10, verbose 15, debug 20, info 30,
 * notice 35, warn 40, error 50, silent.
 */
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';

/** The level names the CLI (`-l`) and `admin.log_level` accept. */
export const LOG_LEVELS = ['silly', 'verbose', 'debug', 'info', 'notice', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type Logger = PinoLogger<'silly' | 'verbose' | 'notice'>;

/** True if `s` is one of {@link LOG_LEVELS}. */
export function isLogLevel(s: unknown): s is LogLevel {
  return typeof s === 'string' && (LOG_LEVELS as readonly string[]).includes(s);
}

/**
 * Make the root logger of a thread.
 * @param level an l7mp level name.
 * @param bindings fields every line carries (e.g. `{worker: 1}`).
 */
export function makeLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      customLevels: { silly: 10, verbose: 15, notice: 35 },
      base: { pid: process.pid, ...bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 2, sync: true }),
  );
}

/**
 * A logger for the data path: at most one line per `key` every `intervalMs`; what it holds back is
 * counted and reported on the next line it lets through. The data path never floods the log.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(log: Logger, intervalMs = 5000, now: () => number = Date.now) {
    this.log = log;
    this.intervalMs = intervalMs;
    this.now = now;
  }

  /** Log `msg` at warn under `key`, unless the key logged within the interval. */
  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const e = this.last.get(key);
    if (e !== undefined && t - e.at < this.intervalMs) {
      e.suppressed++;
      return;
    }
    const suppressed = e?.suppressed ?? 0;
    this.last.set(key, { at: t, suppressed: 0 });
    if (this.last.size > 1024) this.last.delete(this.last.keys().next().value as string);
    this.log.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg);
  }
}
