/**
 * Read a config file: YAML when the name ends in .yaml/.yml (any case), JSON otherwise (l7mp's
 * rule, docs/l7mp-compat.md §0), within the bounds of {@link parseConfigText} (size, nesting depth,
 * YAML aliases).
 */
import fs from 'node:fs';
import { L7Error, ErrorCode } from '../common/errors.ts';
import { CONFIG_LIMITS, parseConfigText } from './parse.ts';

/**
 * Parse the file at `path`.
 * @throws L7Error `L7_ERR_CONFIG_UNREADABLE` with the file name and the problem: unreadable, larger
 *   than {@link CONFIG_LIMITS}.maxBytes, nested too deep, cyclic or exploding YAML aliases, or the
 *   parser's message.
 */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    const size = fs.statSync(path).size;
    if (size > CONFIG_LIMITS.maxBytes) throw new L7Error(ErrorCode.ConfigUnreadable, `cannot parse config file ${path}: larger than ${CONFIG_LIMITS.maxBytes} bytes (got ${size})`);
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof L7Error) throw e;
    throw new L7Error(ErrorCode.ConfigUnreadable, `cannot read config file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return parseConfigText(text, /\.ya?ml$/i.test(path) ? 'yaml' : 'json');
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigUnreadable, `cannot parse config file ${path}: ${(e as Error).message}`, { cause: e });
  }
}
