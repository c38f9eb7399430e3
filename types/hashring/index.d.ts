// Types for hashring 3.x (ketama-compatible consistent hashing), the part l7mp-ts uses.
declare module 'hashring' {
  type Servers = string | string[] | Record<string, number | { weight?: number; vnodes?: number }>;
  interface HashRingOptions {
    'vnode count'?: number;
    'max cache size'?: number;
    replicas?: number;
    compatibility?: 'hash_ring' | 'ketama';
    'default port'?: number;
  }
  class HashRing {
    constructor(servers?: Servers, algorithm?: string, options?: HashRingOptions);
    /** The server a key maps to (undefined when the ring is empty). */
    get(key: string): string;
    /** Up to `size` servers in ring order from the key's point (unique servers by default). */
    range(key: string, size?: number, unique?: boolean): string[];
    add(servers: Servers): this;
    remove(server: string): this;
    has(server: string): boolean;
    reset(): this;
    end(): this;
  }
  export = HashRing;
}
