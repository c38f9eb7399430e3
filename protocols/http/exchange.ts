/**
 * Moved to protocols/core/l7mp-error.ts (l7mp's error answer) and protocols/core/http.ts (the
 * HTTP exchange and metadata), issue 16 item 1. Re-exported for runtime/ (admin/server.ts,
 * runtime.ts, worker-main.ts), which imports l7mp's error answer from here until its imports
 * point at core; then this file goes.
 */
export { l7mpErrorAnswer, l7mpErrorBody, l7mpStatusMessage } from '../core/l7mp-error.ts';
