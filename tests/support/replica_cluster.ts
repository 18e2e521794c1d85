/**
 * Several replicas of the service as real processes (through the launcher) on one Redis, with
 * a fake TLS homeserver for OpenID, a fake SFU and one fake delayed-events endpoint. Each
 * replica reaches the endpoint under its own path prefix (`LIVEKIT_CS_API_URL_OVERRIDES` =
 * `…/<replica id>`), so every restart and send is attributed to the replica that made it.
 * A replica may reach Redis through a {@linkcode TcpProxy} to be partitioned from it.
 *
 * @module
 */
import { hashedIdentity, roomAlias } from "../../lib/livekit/names.ts";
import { userId } from "../../lib/ids.ts";
import { encodeField } from "../../lib/store/codec.ts";
import { type DelayedEventsServer, serveDelayedEvents } from "../fakes/delayed_events.ts";
import { type FakeHomeserver, startFakeHomeserver } from "../fakes/homeserver.ts";
import { TestRedis } from "../fakes/redis.ts";
import { type FakeSfu, postSignedWebhook, startFakeSfu } from "../fakes/sfu.ts";
import { baseEnv, freePort, type ServiceProcess, spawnService } from "./service.ts";
import { startTcpProxy, type TcpProxy } from "./tcp_proxy.ts";

const KEY = "devkey";
const SECRET = "devsecret-devsecret-devsecret-devsecret";
const ROOM_ID = "!replicas:example.com";
const SLOT = "m.call#ROOM";

/** One delegated participant. */
export interface TestJob {
  member: string;
  delayId: string;
  room: string;
  identity: string;
  field: string;
  /** The replica it was registered on. */
  registeredOn: string;
}

/** A replica process and how to reach it. */
export interface Replica {
  readonly id: string;
  readonly svc: ServiceProcess;
  readonly metricsUrl: string;
  /** Present when the replica reaches Redis through a proxy. */
  readonly proxy?: TcpProxy;
}

/** Options of {@linkcode startCluster}. */
export interface ClusterOptions {
  ttlMs: number;
  /** Extra environment of every replica. */
  env?: Record<string, string>;
  /** Redis to use (default: a fresh one, disposed at close). */
  redis?: TestRedis;
  /** Environment replacing `LIVEKIT_REDIS_URL` (e.g. Sentinel settings). */
  redisEnv?: Record<string, string>;
  /** `false`: single instances (no replica variables at all). Default true. */
  replicas?: boolean;
}

/** The running cluster. */
export class Cluster {
  readonly replicas = new Map<string, Replica>();
  readonly #ownsRedis: boolean;
  #counter = 0;

  private constructor(
    readonly options: ClusterOptions,
    readonly redis: TestRedis,
    readonly sfu: FakeSfu,
    readonly hs: FakeHomeserver,
    readonly events: DelayedEventsServer,
    ownsRedis: boolean,
  ) {
    this.#ownsRedis = ownsRedis;
  }

  /** The homeserver's server name (full access). */
  get server(): string {
    return `localhost:${this.hs.port}`;
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    const redis = options.redis ?? await TestRedis.start();
    const sfu = startFakeSfu();
    const hs = await startFakeHomeserver({ tls: true });
    const events = serveDelayedEvents();
    const cluster = new Cluster(options, redis, sfu, hs, events, !options.redis);
    hs.setUser("alice-token", `@alice:${cluster.server}`);
    return cluster;
  }

  /** Starts (or restarts) replica `id`; `partitionable` puts a proxy between it and Redis. */
  async startReplica(id: string, opts: { partitionable?: boolean } = {}): Promise<Replica> {
    const metricsPort = freePort();
    const proxy = opts.partitionable
      ? startTcpProxy({ hostname: "127.0.0.1", port: this.redis.port })
      : undefined;
    const redisEnv = this.options.redisEnv ??
      { LIVEKIT_REDIS_URL: `redis://127.0.0.1:${proxy?.port ?? this.redis.port}` };
    const svc = await spawnService({
      env: {
        ...baseEnv(this.sfu.wsUrl),
        LIVEKIT_KEY: KEY,
        LIVEKIT_SECRET: SECRET,
        LIVEKIT_FULL_ACCESS_HOMESERVERS: this.server,
        SSL_CERT_FILE: this.hs.ca!.caCertPath,
        LIVEKIT_CS_API_URL_OVERRIDES: `${this.server}=${this.events.url}/${id}`,
        LIVEKIT_RATE_LIMIT_USER_PER_SECOND: "0",
        LIVEKIT_MAX_JOBS_PER_USER: "10000",
        LIVEKIT_METRICS_BIND: `127.0.0.1:${metricsPort}`,
        ...(this.options.replicas === false ? {} : {
          LIVEKIT_REPLICAS: "true",
          LIVEKIT_REPLICA_ID: id,
          LIVEKIT_REPLICA_TTL_MS: String(this.options.ttlMs),
        }),
        ...redisEnv,
        ...this.options.env,
      },
    });
    const replica = { id, svc, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, proxy };
    this.replicas.set(id, replica);
    return replica;
  }

  replica(id: string): Replica {
    const r = this.replicas.get(id);
    if (!r) throw new Error(`no replica ${id}`);
    return r;
  }

  /** `kill -9`; returns the monotonic time of the kill. */
  async kill(id: string): Promise<number> {
    const r = this.replica(id);
    const at = performance.now();
    await r.svc.stop("SIGKILL");
    await r.proxy?.close();
    this.replicas.delete(id);
    return at;
  }

  /** Graceful stop (SIGTERM). */
  async stop(id: string): Promise<void> {
    const r = this.replica(id);
    await r.svc.stop("SIGTERM");
    await r.proxy?.close();
    this.replicas.delete(id);
  }

  /** A job key for a fresh member (the participant is absent from the SFU unless `present`). */
  newJob(registeredOn: string, options: { present?: boolean } = {}): TestJob {
    const n = ++this.#counter;
    const member = `member-${n}-${crypto.randomUUID().slice(0, 8)}`;
    const room = roomAlias(ROOM_ID, SLOT);
    const identity = hashedIdentity(userId(`@alice:${this.server}`), "DEVICE", member);
    if (options.present) this.sfu.setPresent(room, identity, true);
    return {
      member,
      delayId: `syd_${member}`,
      room,
      identity,
      field: encodeField(room, identity),
      registeredOn,
    };
  }

  /** Registers `job` with `/get_token` on its replica; returns the HTTP status. */
  async register(job: TestJob, delayTimeoutMs: number, on = job.registeredOn): Promise<number> {
    const res = await fetch(`${this.replica(on).svc.url}/get_token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        room_id: ROOM_ID,
        slot_id: SLOT,
        openid_token: {
          access_token: "alice-token",
          token_type: "Bearer",
          matrix_server_name: this.server,
          expires_in: 3600,
        },
        member: {
          id: job.member,
          claimed_user_id: `@alice:${this.server}`,
          claimed_device_id: "DEVICE",
        },
        delay_id: job.delayId,
        delay_timeout: delayTimeoutMs,
      }),
    });
    await res.body?.cancel();
    return res.status;
  }

  /** Delivers a signed webhook event to replica `to`; returns the status. */
  async webhook(
    to: string,
    event: string,
    job: TestJob,
    reason?: string,
  ): Promise<number> {
    const participant: Record<string, unknown> = { identity: job.identity };
    if (reason) participant.disconnectReason = reason;
    const body = JSON.stringify({
      event,
      room: { name: job.room },
      participant,
      id: `EV_${crypto.randomUUID()}`,
      createdAt: String(Math.floor(Date.now() / 1000)),
    });
    return await postSignedWebhook(this.replica(to).svc.url, body, { key: KEY, secret: SECRET });
  }

  /** Delayed-event calls for a job (optionally of one action, after a monotonic time). */
  calls(job: TestJob, action?: string, since = -Infinity) {
    return this.events.fake.callsFor(job.delayId, action).filter((c) => c.at > since);
  }

  /** The replica (path prefix) that made each call. */
  static by(call: { prefix: string }): string {
    return call.prefix.replace(/^\//, "");
  }

  /** A metric value of a replica (`name` with its label set, exactly as rendered). */
  async metric(id: string, series: string): Promise<number | undefined> {
    const text = await fetch(this.replica(id).metricsUrl).then((r) => r.text());
    for (const line of text.split("\n")) {
      if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
    }
    return undefined;
  }

  /** `/readyz` status of a replica. */
  async ready(id: string): Promise<number> {
    const res = await fetch(`${this.replica(id).svc.url}/readyz`);
    await res.body?.cancel();
    return res.status;
  }

  async close(): Promise<void> {
    for (const r of this.replicas.values()) {
      await r.svc.stop("SIGKILL").catch(() => {});
      await r.proxy?.close();
    }
    this.replicas.clear();
    await this.events.close();
    await this.hs.close();
    await this.sfu.close();
    if (this.#ownsRedis) await this.redis.dispose();
  }
}
