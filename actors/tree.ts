/** The live actor tree as plain JSON: what `GET /api/v1/actors` and `l7mp-ts actors` show. */
import type { Actor, ActorCell, ActorNode } from './actor.ts';

// Declared next to Actor (its retainedChildren returns nodes) so that actor.ts imports nothing of this file.
export type { ActorNode };

function retained(cell: ActorCell<unknown>): ActorNode[] {
  try {
    return cell.actor.retainedChildren();
  } catch {
    return [];
  }
}

/** Snapshot a cell and its descendants (and the nodes it retains, see {@link Actor.retainedChildren}). */
export function actorTree(cell: ActorCell<unknown>, worker: number | null): ActorNode {
  let extra: Record<string, unknown> = {};
  try {
    extra = cell.actor.describe();
  } catch {
    // describe() is best effort: a failing actor still shows.
  }
  return {
    ...extra,
    id: cell.id,
    kind: cell.kind,
    name: cell.name,
    worker,
    state: cell.state,
    mailbox: cell.mailboxSize,
    processed: cell.processed,
    restarts: cell.restarts,
    children: [...[...cell.children.values()].map((c) => actorTree(c, worker)), ...retained(cell)],
  };
}
