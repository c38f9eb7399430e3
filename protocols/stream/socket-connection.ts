/**
 * The socket adapter moved to protocols/core/socket-connection.ts (issue 16 item 1); re-exported
 * here only for protocols/rtsp/cluster.ts until it imports core.
 */
export { SocketConnection } from '../core/socket-connection.ts';
