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
export function sessionRecord(s: SessionCore, sp: SessionSplice | null, reason = 'active'): SessionRecord {
  const final = s.status === 'DESTROYED';
  sp?.syncKernel();
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
export function describeSession(s: SessionCore, sp: SessionSplice | null): Record<string, unknown> {
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
    ...(sp?.offloadable === true ? { offload: sp.offloadState() } : {}),
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
 * A session's events, oldest first: INIT (when it started), LOOKUP SUCCESS (`via`: the rule that
 * matched; null: none, as for a rebuilt session), then its flat log (`SessionActor.event`: event,
 * ms since `started`, message or null for the event's usual text) with the first CONNECT
 * (`connectedMs` since `started`, -1: not connected) after the log's first `connectedAfter` events.
 */
export function eventList(log: ReadonlyArray<string | number | null> | null, started: number, name: string, via: string | null, connectedMs: number, connectedAfter: number): SessionEvent[] {
  const at = (ms: number): string => new Date(started + ms).toISOString();
  const out: SessionEvent[] = [{ event: 'INIT', timestamp: at(0), message: `Session ${name} initialized` }];
  if (via !== null) out.push({ event: 'LOOKUP SUCCESS', timestamp: at(0), message: via });
  const n = log === null ? 0 : log.length / 3;
  for (let k = 0; k <= n; k++) {
    if (k === connectedAfter && connectedMs >= 0) out.push({ event: 'CONNECT', timestamp: at(connectedMs), message: 'Session successfully connected' });
    if (k === n || log === null) break;
    out.push({ event: log[3 * k] as string, timestamp: at(log[3 * k + 1] as number), message: (log[3 * k + 2] as string | null) ?? '' });
  }
  return out;
}
