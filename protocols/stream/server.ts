/**
 * Moved to protocols/core/server.ts (issue 16 item 1); re-exported for the stream protocols that
 * still import it from here (TCP, Unix streams) until they are rebased on core.
 */
export { closeServer, hostPort, listen, stopListening } from '../core/server.ts';
