/**
 * CPU time of the kernel's worker threads, for benchmarks of spliced flows (bench/udp-offload.ts,
 * bench/rtsp-fanout.ts): the kernel sends spliced datagrams from kworker and ksoftirqd threads
 * (docs/offload-facts.md G6), so their CPU belongs to the proxy's cost.
 */
import fs from 'node:fs';

/** CPU ns so far of every kworker and ksoftirqd thread (/proc/PID/schedstat). */
export function kthreadNs(): number {
  let sum = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const comm = fs.readFileSync(`/proc/${d}/comm`, 'utf8');
      if (!comm.startsWith('kworker') && !comm.startsWith('ksoftirqd')) continue;
      sum += Number(fs.readFileSync(`/proc/${d}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // gone
    }
  }
  return sum;
}
