/**
 * Opt-in watch of the `-c` file (`--watch-config`, `admin.watch_config`; issue 15 item 3): a
 * change of its content reloads it as SIGHUP does (cli/main.ts `reload`).
 *
 * The directory is watched, not the file: editors save by writing a new file and renaming it over
 * the old one, and a Kubernetes ConfigMap volume swaps a `..data` symlink, so the file's own inode
 * (which a watch of the file follows) may never change. Every event in the directory restarts a
 * debounce timer ({@link WATCH_DEBOUNCE_MS}); when it fires, the file is read and compared with
 * the content last seen: only a different content reloads (a `touch`, an unrelated file or a
 * half-written save that is then completed with the same bytes do not). A file that cannot be read
 * at that moment (mid-rename) is skipped until the next event.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../common/log.ts';

/** Quiet time after the last change event before the file is read. Unit: ms. */
export const WATCH_DEBOUNCE_MS = 500;

export class ConfigWatch {
  private readonly file: string;
  private readonly onChange: () => void;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last: Buffer | null;

  /**
   * @param onChange called (once per debounced change of content) to reload
   * @param debounceMs see {@link WATCH_DEBOUNCE_MS}
   */
  constructor(file: string, onChange: () => void, log: Logger, debounceMs = WATCH_DEBOUNCE_MS) {
    this.file = path.resolve(file);
    this.onChange = onChange;
    this.log = log;
    this.debounceMs = debounceMs;
    this.last = this.read();
  }

  /** Start watching. Returns false (and logs why) if the directory cannot be watched. */
  start(): boolean {
    const dir = path.dirname(this.file);
    try {
      this.watcher = fs.watch(dir, { persistent: false }, () => this.changed());
    } catch (e) {
      this.log.error({ file: this.file, err: (e as Error).message }, 'cannot watch the config file; reload it with SIGHUP');
      return false;
    }
    this.watcher.on('error', (e: Error) => {
      this.log.error({ file: this.file, err: e.message }, 'config file watch failed; reload it with SIGHUP');
      this.close();
    });
    this.log.info({ file: this.file, debounce_ms: this.debounceMs }, 'watching the config file: a change reloads it');
    return true;
  }

  private changed(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.settle(), this.debounceMs);
    this.timer.unref();
  }

  private settle(): void {
    this.timer = null;
    const now = this.read();
    if (now === null || (this.last !== null && now.equals(this.last))) return;
    this.last = now;
    this.onChange();
  }

  private read(): Buffer | null {
    try {
      return fs.readFileSync(this.file);
    } catch {
      return null;
    }
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
  }
}
