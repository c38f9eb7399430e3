/**
 * `GET /api/v1/actors`: the live actor tree (process → workers → listeners, clusters → sessions)
 * as JSON, or as text for people with `?format=text`. `DELETE /api/v1/actors/{id}` stops a
 * session actor (its connections close, its stages end).
 */
import { L7Error, ErrorCode } from '../../../common/errors.ts';
import type { ActorNode } from '../../../actors/tree.ts';
import type { Runtime } from '../runtime.ts';
import { errorReply, type AdminServer } from './server.ts';

/** One line per actor, indented by depth: `kind name [id] state mailbox=… processed=…` plus key counters. */
export function renderTree(n: ActorNode, depth = 0, out: string[] = []): string {
  const extra: string[] = [];
  if (n.kind === 'session') {
    const d = n.downstream as { remote?: string; rx_packets?: number; tx_packets?: number } | undefined;
    extra.push(`status=${String(n.status)}`, `from=${d?.remote ?? '?'}`, `in=${d?.rx_packets ?? 0}pkt`, `out=${d?.tx_packets ?? 0}pkt`);
  } else if (n.kind === 'listener') extra.push(`${String(n.protocol)} ${String(n.address ?? n.filename ?? '')}`.trim(), `sessions_total=${String(n.sessions_total ?? 0)}`);
  else if (n.kind === 'cluster') extra.push(String(n.protocol));
  out.push(`${'  '.repeat(depth)}${n.kind} ${n.name} [${n.id}] ${n.state} mailbox=${n.mailbox} processed=${n.processed}${extra.length ? ` ${extra.join(' ')}` : ''}`);
  for (const c of n.children) renderTree(c, depth + 1, out);
  return depth === 0 ? `${out.join('\n')}\n` : '';
}

export function registerActors(server: AdminServer, runtime: Runtime): void {
  server.route('GET', '/api/v1/actors', async (req) => {
    const tree = await runtime.tree();
    if (req.query.get('format') === 'text') return { headers: { 'content-type': 'text/plain; charset=utf-8' }, body: renderTree(tree) };
    return { body: tree };
  });
  server.route('DELETE', '/api/v1/actors/{id}', async (req) => {
    const id = req.params.id as string;
    const ok = await runtime.stopActor(id);
    // A real 404 here (the l7mp object routes answer 400 for unknown names, as l7mp did).
    if (ok === 'not-found') return errorReply(404, 'Not Found', `No such actor: ${id}`);
    if (ok === 'not-session') throw new L7Error(ErrorCode.InvalidArgument, `Actor ${id} is not a session; only sessions can be stopped`);
    return { body: { status: 200, message: 'OK' } };
  });
}
