/** Exec cluster spec: a process per session stage, like socat's EXEC address (new in l7mp-ts). */
import { Type, type Static } from '@sinclair/typebox';

/** An environment variable name (POSIX portable: letters, digits, underscore; not a digit first). */
export const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]*$';

/** The variables passed through when `env_passthrough` is not given. */
export const DEFAULT_ENV_PASSTHROUGH: readonly string[] = ['PATH'];

export const ExecClusterSpec = Type.Object(
  {
    protocol: Type.Literal('Exec'),
    command: Type.Array(Type.String(), {
      minItems: 1,
      description: 'Program and arguments (argv), run without a shell; the program is looked up in PATH. E.g. ["cat"] or ["/usr/bin/sox", "-t", "raw", "-", ...].',
      expect: 'a non-empty array of strings (program and arguments)',
    }),
    cwd: Type.Optional(Type.String({ minLength: 1, description: 'Working directory of the process. Default: the proxy\'s.' })),
    env: Type.Optional(
      Type.Record(Type.String({ pattern: ENV_NAME }), Type.String(), {
        description:
          'Environment variables set for the process. The process gets a clean environment: these, the variables named in `env_passthrough`, and L7MP_SESSION (the session name) and L7MP_METADATA (the session metadata as JSON), which are always set. Nothing else of the proxy\'s environment (no admin token, no NATS credentials).',
        expect: 'an object of variable names to string values',
      }),
    ),
    env_passthrough: Type.Optional(
      Type.Array(Type.String({ pattern: ENV_NAME, expect: 'an environment variable name (letters, digits, _; not a digit first)' }), {
        default: [...DEFAULT_ENV_PASSTHROUGH],
        description:
          'Names of the proxy\'s environment variables passed to the process with their values (when set); `env` overrides them. Default ["PATH"], so programs are found and run as from a shell; [] passes nothing.',
        expect: 'an array of environment variable names, e.g. ["PATH", "HOME"]',
      }),
    ),
    stderr: Type.Optional(
      Type.Union([Type.Literal('inherit'), Type.Literal('ignore')], {
        default: 'inherit',
        description: 'The process\'s stderr: `inherit` writes to the proxy\'s stderr, `ignore` discards it.',
        expect: '"inherit" or "ignore"',
      }),
    ),
    kill_timeout: Type.Optional(
      Type.Number({
        minimum: 0,
        default: 2,
        description: 'When the session ends the process gets SIGTERM; if it is still running after this many seconds, SIGKILL. Unit: s.',
        expect: 'a number of seconds >= 0',
      }),
    ),
  },
  {
    description:
      'Exec: each session stage spawns `command` and pipes the session into its stdin and its stdout back (a byte stream). The process is killed when the session ends; the stage ends when the process closes its stdout and exits (a non-zero exit is an upstream error).',
  },
);
export type ExecClusterSpec = Static<typeof ExecClusterSpec>;
