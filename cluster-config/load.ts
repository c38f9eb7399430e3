/**
 * Read a config file: YAML when the name ends in .yaml/.yml (any case), JSON otherwise (l7mp's
 * rule, compat reference §0).
 */
import fs from 'node:fs';
import YAML from 'yaml';
import { L7Error, ErrorCode } from '../runtime/common/errors.ts';

/** Parse the file at `path`. @throws L7Error `L7_ERR_CONFIG_UNREADABLE` with the file name and the parser's message. */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigUnreadable, `cannot read config file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return /\.ya?ml$/i.test(path) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigUnreadable, `cannot parse config file ${path}: ${(e as Error).message}`, { cause: e });
  }
}
