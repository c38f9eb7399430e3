/**
 * What a session shows of itself: its record (actors/record.ts; the final one when it ends, live
 * snapshots for metrics at scrape time) and its node in the actor tree. Both read the plain
 * counters of its connections and the kernel's share of a spliced session; neither touches the
 * packet path.
 */
import type { SessionCore, Stage } from './session-core.ts';
import type { SessionSplice } from './splice.ts';
import { addCounts, addStats, zeroCounts, type SessionRecord, type StageRecord } from './record.ts';

/**
 * The session's account now: traffic of the downstream and of every stage (their replaced
 * connections included). Called at the end (final record) and by metrics at scrape time for
 * live sessions (`reason` = `active`); reads the plain counters, allocates only the record.
 */
export function sessionRecord(s: SessionCore, sp: SessionSplice, reason = 'active'): SessionRecord {
  const final = s.status === 'DESTROYED';
  sp.syncKernel();
  const src = s.stages[0];
  const r: SessionRecord = {
    name: s.init.name,
    listener: s.init.listener,
    route: s.route?.name ?? null,
    status: s.status,
    reason,
    durationMs: Date.now() - s.started,
    remote: s.init.source.remote,
    ...zeroCounts(),
    stages: [],
  };
  addStats(r, s.init.source.stats);
  if (src !== undefined) addCounts(r, src.kernel);
  if (final && src !== undefined && src.setup !== null) r.setupDrops = src.setup.held.length;
  for (let i = 1; i < s.stages.length; i++) {
    const st = s.stages[i] as Stage;
    const sr: StageRecord = {
      role: st.role as StageRecord['role'],
      cluster: st.cluster,
      endpoint: st.endpoint?.name ?? null,
      address: st.endpoint?.address ?? null,
      remote: st.remote,
      connected: !s.ended && st.conn !== null,
      ...st.prior,
    };
    if (st.retired !== null) addStats(sr, st.retired.stats);
    if (st.conn !== null) addStats(sr, st.conn.stats);
    addCounts(sr, st.kernel);
    if (final && st.setup !== null) sr.setupDrops += st.setup.held.length;
    r.stages.push(sr);
  }
  return r;
}

/** The session's node in the actor tree (`SessionActor.describe`). */
export function describeSession(s: SessionCore, sp: SessionSplice): Record<string, unknown> {
  // Counts from record(): they include the connections a reconnect replaced and the kernel's
  // share of a spliced session, as /metrics does.
  const rec = sessionRecord(s, sp);
  const recs = rec.stages;
  return {
    status: s.status,
    listener: s.init.listener,
    route: s.route?.name ?? null,
    age_ms: Date.now() - s.started,
    downstream: { remote: s.init.source.remote, rx_packets: rec.rxPackets, rx_bytes: rec.rxBytes, tx_packets: rec.txPackets, tx_bytes: rec.txBytes },
    ...(sp.offloadable ? { offload: sp.offloadState() } : {}),
    metadata: s.init.metadata,
    events: s.events,
    stages: s.stages.slice(1).map((st, i) => ({
      role: st.role,
      cluster: st.cluster,
      status: st.conn !== null ? 'CONNECTED' : s.status === 'INIT' ? 'INIT' : s.ended ? 'END' : 'RETRYING',
      endpoint: st.endpoint?.address ?? null,
      endpoint_name: st.endpoint?.name ?? null,
      remote: st.conn?.remote ?? null,
      tx_packets: recs[i]?.txPackets ?? 0,
      rx_packets: recs[i]?.rxPackets ?? 0,
    })),
  };
}

/** One event of a session as the actor tree shows it (l7mp's session `events`). */
export interface SessionEvent {
  event: string;
  /** ISO 8601. */
  timestamp: string;
  message: string;
}

/**
 * A session's events from its flat log (`SessionActor.event`: event, ms since `started`, message
 * or null for the event's usual text), oldest first.
 */
export function eventList(log: ReadonlyArray<string | number | null> | null, started: number, name: string): SessionEvent[] {
  const out: SessionEvent[] = [];
  if (log === null) return out;
  for (let i = 0; i + 2 < log.length; i += 3) {
    const event = log[i] as string;
    const message = (log[i + 2] as string | null) ?? (event === 'INIT' ? `Session ${name} initialized` : '');
    out.push({ event, timestamp: new Date(started + (log[i + 1] as number)).toISOString(), message });
  }
  return out;
}
