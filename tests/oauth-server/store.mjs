// In-memory storage for oidc-provider's models, optionally mirrored to a JSON state file.
//
// Why not oidc-provider's bundled MemoryAdapter: it is an LRU capped at 1000 entries, so a long
// test run could silently evict a live refresh token and turn it into a spurious invalid_grant;
// and it cannot be enumerated, which /__test/revoke and /__test/grant-valid need.
//
// Entries are keyed "<Model>:<id>" and hold { payload, expiresAt } with expiresAt in epoch ms
// (null = never). Expired entries are invisible to every read and are dropped lazily.

import fs from 'node:fs';

const STATE_VERSION = 1;

const epochSeconds = () => Math.floor(Date.now() / 1000);

export class Store {
  /** @type {Map<string, {payload: object, expiresAt: number|null}>} */
  #entries = new Map();

  #file;

  #setsSinceSweep = 0;

  /** Side data persisted with the entries (client secrets, keys, ports); see server.mjs. */
  meta = {};

  constructor(file) {
    this.#file = file;
    if (file && fs.existsSync(file)) {
      const state = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (state.version !== STATE_VERSION) {
        throw new Error(`${file}: unsupported state version ${state.version}`);
      }
      this.meta = state.meta ?? {};
      for (const [key, entry] of state.entries ?? []) this.#entries.set(key, entry);
      this.#sweep();
    }
  }

  #live(key) {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #sweep() {
    const now = Date.now();
    for (const [key, { expiresAt }] of this.#entries) {
      if (expiresAt !== null && expiresAt <= now) this.#entries.delete(key);
    }
  }

  /** Writes the state file, if any. Synchronous on purpose: once a token response has been
   * sent, the token it carries is already on disk, even if the test then SIGKILLs us. */
  save() {
    if (!this.#file) return;
    this.#sweep();
    const state = { version: STATE_VERSION, meta: this.meta, entries: [...this.#entries] };
    const tmp = `${this.#file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    fs.renameSync(tmp, this.#file);
  }

  /** Live [id, payload] pairs of one model. Payloads are the stored objects: do not mutate. */
  * list(model) {
    const prefix = `${model}:`;
    for (const key of [...this.#entries.keys()]) {
      if (!key.startsWith(prefix)) continue;
      const entry = this.#live(key);
      if (entry) yield [key.slice(prefix.length), entry.payload];
    }
  }

  get(model, id) {
    return this.#live(`${model}:${id}`)?.payload;
  }

  set(model, id, payload, expiresInSeconds) {
    const expiresAt = typeof expiresInSeconds === 'number'
      ? Date.now() + expiresInSeconds * 1000
      : null;
    // Cloned so that later changes to the caller's object never leak into the store.
    this.#entries.set(`${model}:${id}`, { payload: structuredClone(payload), expiresAt });
    // Without a state file nothing else sweeps; keep a long test run's memory bounded.
    this.#setsSinceSweep += 1;
    if (this.#setsSinceSweep >= 500) {
      this.#setsSinceSweep = 0;
      this.#sweep();
    }
    this.save();
  }

  delete(model, id) {
    if (this.#entries.delete(`${model}:${id}`)) this.save();
  }

  consume(model, id) {
    const entry = this.#live(`${model}:${id}`);
    if (entry) {
      entry.payload.consumed = epochSeconds();
      this.save();
    }
  }

  /** Deletes every entry of `model` that belongs to grant `grantId`; returns how many. */
  deleteByGrantId(model, grantId) {
    let n = 0;
    for (const [id, payload] of this.list(model)) {
      if (payload.grantId === grantId) {
        this.#entries.delete(`${model}:${id}`);
        n += 1;
      }
    }
    if (n) this.save();
    return n;
  }

  /** An oidc-provider adapter class (configuration.adapter) backed by this store. */
  adapterClass() {
    const store = this;
    return class StoreAdapter {
      constructor(model) {
        this.model = model;
      }

      async upsert(id, payload, expiresIn) {
        store.set(this.model, id, payload, expiresIn);
      }

      async find(id) {
        if (id === undefined) return undefined;
        const payload = store.get(this.model, id);
        return payload && structuredClone(payload);
      }

      async findByUid(uid) {
        for (const [, payload] of store.list(this.model)) {
          if (payload.uid === uid) return structuredClone(payload);
        }
        return undefined;
      }

      async findByUserCode(userCode) {
        for (const [, payload] of store.list(this.model)) {
          if (payload.userCode === userCode) return structuredClone(payload);
        }
        return undefined;
      }

      async consume(id) {
        store.consume(this.model, id);
      }

      async destroy(id) {
        store.delete(this.model, id);
      }

      async revokeByGrantId(grantId) {
        store.deleteByGrantId(this.model, grantId);
      }
    };
  }
}
