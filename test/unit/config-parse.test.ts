/**
 * Config text within bounds (cluster-config/parse.ts): the limits are exact (64 levels pass, 65
 * do not), errors name the problem and where, and nothing cyclic or exploding gets through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONFIG_LIMITS, parseConfigText, parseYamlDocuments } from '../../cluster-config/parse.ts';
import { ErrorCode } from '../../common/errors.ts';

function fails(fn: () => unknown, message: string | RegExp, status = 400): void {
  assert.throws(fn, (e: unknown) => {
    const err = e as { code?: string; message?: string; status?: number };
    assert.equal(err.code, ErrorCode.ConfigUnreadable);
    assert.equal(err.status, status);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message as string, message);
    return true;
  });
}

const nest = (n: number): string => `${'['.repeat(n - 1)}{"a": "]]]{{{\\""}${']'.repeat(n - 1)}`;

test('depth: 64 levels pass, 65 do not, in JSON (brackets inside strings do not count) and in YAML', () => {
  assert.equal(CONFIG_LIMITS.maxDepth, 64);
  assert.doesNotThrow(() => parseConfigText(nest(64), 'json'));
  fails(() => parseConfigText(nest(65), 'json'), 'nested deeper than 64 levels at line 1, column 65');
  fails(() => parseConfigText(`\n\n  ${nest(65)}`, 'json'), 'nested deeper than 64 levels at line 3, column 67');
  assert.doesNotThrow(() => parseConfigText(nest(64), 'yaml'));
  fails(() => parseConfigText(nest(65), 'yaml'), /^\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]…: nested deeper than 64 levels$/);
  fails(() => parseConfigText('['.repeat(20_000), 'yaml'), /^nested deeper than 64 levels|^Flow sequence/);
});

test('YAML aliases: ordinary ones are fine; cyclic ones and bombs are refused with the alias and its position', () => {
  assert.deepEqual(parseConfigText('a: &x {p: 1}\nb: *x\n', 'yaml'), { a: { p: 1 }, b: { p: 1 } });
  fails(() => parseConfigText('a: &x\n  b: [1, *x]\n', 'yaml'), 'alias *x at line 2, column 10 refers to a node that contains it (cyclic)');
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (const [i, n] of ['b', 'c', 'd', 'e', 'f'].entries()) lines.push(`${n}: &${n} [${Array(9).fill(`*${'abcdef'[i]}`).join(', ')}]`);
  fails(() => parseConfigText(lines.join('\n'), 'yaml'), 'more than 100 alias expansions (alias bomb?)');
  // Depth through an alias counts: 40 levels aliased under 40 more.
  fails(() => parseConfigText(`a: &d ${nest(40)}\nb: ${'['.repeat(39)}*d${']'.repeat(39)}\n`, 'yaml'), /^b\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]…: nested deeper than 64 levels$/);
  // Every document of a stream is checked.
  assert.deepEqual(parseYamlDocuments('a: 1\n---\nb: 2\n'), [{ a: 1 }, { b: 2 }]);
  fails(() => parseYamlDocuments('a: 1\n---\nb: &y [*y]\n'), /^alias \*y at line 3, column 8 refers to a node that contains it/);
});

test('size: over 4 MiB is refused (413) before parsing; parser errors keep their message', () => {
  fails(() => parseConfigText(`"${'x'.repeat(CONFIG_LIMITS.maxBytes)}"`, 'json'), `larger than ${CONFIG_LIMITS.maxBytes} bytes (got ${CONFIG_LIMITS.maxBytes + 2})`, 413);
  fails(() => parseConfigText('{"a": ', 'json'), /JSON/);
  fails(() => parseConfigText('a: [', 'yaml'), /line 1/);
});
