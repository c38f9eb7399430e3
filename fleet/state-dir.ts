/**
 * `--state-dir DIR`: the last config this node applied from the fleet, kept on disk so that a
 * restart while NATS is down still serves it (test/e2e/fleet.test.ts). One file,
 * `DIR/applied.json`, replaced atomically (write to a temp file, fsync, rename).
 */
import fs from 'node:fs';
import path from 'node:path';
import { L7Error, ErrorCode } from '../common/errors.ts';

/** What `applied.json` holds. */
export interface AppliedState {
  /** Format version of this file. */
  readonly version: 1;
  readonly fleet: string;
  readonly nodeId: string;
  /** The KV revision the config was applied at. */
  readonly revision: number;
  /** The l7mp document that was applied (the merge of every key targeting the node). */
  readonly config: Record<string, unknown>;
  /** ISO 8601 time of the apply. */
  readonly time: string;
}

const FILE = 'applied.json';

/**
 * Read the state, or null if there is none yet.
 * @throws L7Error `L7_ERR_CONFIG_UNREADABLE` if the file exists but cannot be read or parsed.
 */
export function loadState(dir: string): AppliedState | null {
  const file = path.join(dir, FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new L7Error(ErrorCode.ConfigUnreadable, `--state-dir: cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const s = JSON.parse(text) as AppliedState;
    if (s.version !== 1 || typeof s.revision !== 'number' || s.config === null || typeof s.config !== 'object') throw new Error('not an l7mp-ts state file');
    return s;
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigUnreadable, `--state-dir: cannot parse ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** Write the state atomically (the directory is created if missing). @throws on I/O errors. */
export function saveState(dir: string, s: AppliedState): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(s));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
