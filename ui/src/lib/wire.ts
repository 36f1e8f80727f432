// Generated from the Rust types in src/wire.rs by `SOCKPIT_UPDATE_WIRE=1 cargo test wire`.
// Do not edit by hand.

export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  NoStatus: 1005,
  Abnormal: 1006,
  InvalidPayload: 1007,
  Policy: 1008,
  TooBig: 1009,
  Unauthorized: 4001,
  Forbidden: 4003,
  NoEndpoint: 4004,
  TooManyConnections: 4029,
  UpstreamFailed: 4502,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export type DropReason = "idle_timeout" | "kicked" | "message_too_big" | "send_queue_full" | "write_stalled";

export type UserId = string | number;

export type EventKind = "server_started" | "server_stopped" | "server_error" | "handshake_rejected" | "connected" | "disconnected" | "message_in" | "message_out" | "published" | "webhook_failed" | "http_request" | "upstream_output" | "upstream_state" | "bridge_state" | "broker_state";

export type Event = { 
/**
 * Position in this server run's event stream, from 1; set by [`EventLog::emit`].
 * A reader that has seen up to N skips anything at or below N.
 */
seq: number, 
/**
 * RFC 3339 time with milliseconds, UTC.
 */
ts: string, 
/**
 * What happened.
 */
kind: EventKind, 
/**
 * Connection id.
 */
conn?: string, 
/**
 * Endpoint path pattern.
 */
endpoint?: string, 
/**
 * Request path (query redacted).
 */
path?: string, 
/**
 * Channel.
 */
channel?: string, 
/**
 * User id.
 */
user?: string, 
/**
 * Peer address.
 */
remote?: string, 
/**
 * Origin header.
 */
origin?: string, 
/**
 * Close code.
 */
code?: number, 
/**
 * Human reason.
 */
reason?: string, 
/**
 * Payload size.
 */
bytes?: number, 
/**
 * First 200 characters of a message.
 */
preview?: string, 
/**
 * Recipients reached (publish, broadcast).
 */
delivered?: number, 
/**
 * HTTP method (proxied requests).
 */
method?: string, 
/**
 * HTTP status (proxied requests).
 */
status?: number, 
/**
 * Milliseconds from the request to the end of its answer (proxied requests).
 */
duration_ms?: number, };

export type BridgeState = "connecting" | "connected" | "reconnecting";

export type BrokerState = "connecting" | "connected" | "reconnecting";

export type BrokerStatus = { 
/**
 * The Redis URL, password hidden.
 */
url: string, 
/**
 * This instance's id.
 */
instance: string, 
/**
 * Connected or not.
 */
state: BrokerState, 
/**
 * One line for people.
 */
detail: string, 
/**
 * Publishes sent to the other instances.
 */
forwarded: number, 
/**
 * Publishes received from the other instances.
 */
received: number, 
/**
 * Publishes that could not be forwarded (Redis away, or the queue full).
 */
lost: number, 
/**
 * Instances seen in the last few seconds, this one included.
 */
instances: number, 
/**
 * Open connections on all of them.
 */
connections: number, 
/**
 * Members by channel on all of them (the busiest 200).
 */
channels: { [key in string]?: number }, };

export type BridgeStatus = { 
/**
 * The Redis URL, password hidden.
 */
url: string, 
/**
 * channels_redis's prefix.
 */
prefix: string, 
/**
 * Listening or not.
 */
state: BridgeState, 
/**
 * One line for people.
 */
detail: string, 
/**
 * `group_send` messages delivered to a channel with members here, since start
 * (the pub/sub layer carries every group's messages; the others are not counted).
 */
received: number, 
/**
 * Groups joined on the default layer (the channels with members here).
 */
groups: number, };

export type ProcessState = "starting" | "ready" | "exited" | "crash_loop" | "stopped";

export type ProcessStatus = { 
/**
 * The command line.
 */
command: string, 
/**
 * What it is doing.
 */
state: ProcessState, 
/**
 * Its process id (the group's id too), while it runs.
 */
pid?: number, 
/**
 * Its last exit code (negative: killed by that signal).
 */
exit_code?: number, 
/**
 * Restarts since the server started.
 */
restarts: number, 
/**
 * One line for people: `ready at http://127.0.0.1:8001 after 1.4s`.
 */
detail: string, };

export type ProxyStatus = { 
/**
 * `http://host:port`.
 */
upstream: string, 
/**
 * Whether WebSockets on unknown paths are relayed.
 */
websockets: boolean, 
/**
 * Requests forwarded since start.
 */
requests: number, 
/**
 * Requests per second over the last second (set by the sampler).
 */
requests_per_s: number, 
/**
 * The latest errors, oldest first (`12:00:01 GET /api/: 502 connection refused`).
 */
errors: Array<string>, 
/**
 * The command Sockpit runs, if it runs one.
 */
process?: ProcessStatus, };

export type StatsSnapshot = { 
/**
 * RFC 3339 time of the sample.
 */
ts: string, 
/**
 * Seconds since the server started.
 */
uptime_s: number, 
/**
 * Open WebSocket connections.
 */
connections: number, 
/**
 * Open connections by endpoint (every configured endpoint is listed).
 */
endpoints: { [key in string]?: number }, 
/**
 * Members by channel (the busiest [`MAX_CHANNELS_LISTED`]).
 */
channels: { [key in string]?: number }, 
/**
 * Channels with at least one member.
 */
channel_count: number, 
/**
 * Messages received from clients since start.
 */
messages_in: number, 
/**
 * Messages written to clients since start.
 */
messages_out: number, 
/**
 * Bytes received since start.
 */
bytes_in: number, 
/**
 * Bytes written since start.
 */
bytes_out: number, 
/**
 * API publishes since start.
 */
published: number, 
/**
 * Messages in per second over the last second.
 */
messages_in_per_s: number, 
/**
 * Messages out per second over the last second.
 */
messages_out_per_s: number, 
/**
 * Clients the server closed, by reason.
 */
dropped_clients: { [key in DropReason]?: number }, 
/**
 * Events the log file writer dropped because the disk was behind.
 */
log_dropped: number, 
/**
 * Why the log file cannot be written right now (disk full…), if it cannot.
 */
log_error?: string, 
/**
 * The `[proxy]` upstream, when one is configured.
 */
proxy?: ProxyStatus, 
/**
 * The channels_redis bridge, when one is configured.
 */
bridge?: BridgeStatus, 
/**
 * The cross-instance broker, with cluster-wide counts, when one is configured.
 */
broker?: BrokerStatus, };

export type ConnectionInfo = { 
/**
 * Wire id (`c12`).
 */
id: string, 
/**
 * Endpoint path pattern.
 */
endpoint: string, 
/**
 * Requested path.
 */
path: string, 
/**
 * Channels joined.
 */
channels: Array<string>, 
/**
 * User id.
 */
user?: string, 
/**
 * Peer address.
 */
remote: string, 
/**
 * Origin header.
 */
origin?: string, 
/**
 * RFC 3339 time of the handshake.
 */
since: string, 
/**
 * Messages received.
 */
msgs_in: number, 
/**
 * Messages written.
 */
msgs_out: number, 
/**
 * Bytes received.
 */
bytes_in: number, 
/**
 * Bytes written.
 */
bytes_out: number, };

export type EventsFrame = { "type": "hello", 
/**
 * Events kept in the ring, oldest first.
 */
events: Array<Event>, 
/**
 * Stats at connect time.
 */
stats: StatsSnapshot, } | { "type": "events", 
/**
 * The batch, oldest first.
 */
events: Array<Event>, } | { "type": "stats", 
/**
 * The snapshot.
 */
stats: StatsSnapshot, } | { "type": "lagged", 
/**
 * How many.
 */
missed: number, };

export type PublishRequest = { 
/**
 * A channel.
 */
channel?: string, 
/**
 * Django Channels' word for a channel.
 */
group?: string, 
/**
 * A user id.
 */
user?: UserId, 
/**
 * A connection id.
 */
connection?: string, 
/**
 * The payload; a string is sent as its text, anything else as JSON. Required:
 * a publish without it is refused with a 422 that says so.
 */
data: unknown, };

export type PublishResponse = { 
/**
 * Recipients whose queue took the message.
 */
delivered: number, };

export type TokenRequest = { 
/**
 * The user id claim.
 */
user_id: UserId, 
/**
 * Lifetime in seconds (default 3600).
 */
ttl_s?: number, 
/**
 * Extra claims.
 */
claims?: Record<string, unknown>, };

export type TokenResponse = { 
/**
 * The JWT.
 */
token: string, 
/**
 * The user id, as a string.
 */
user_id: string, 
/**
 * Expiry, seconds since the epoch.
 */
exp: number, };

export type ConnectionsResponse = { 
/**
 * Live connections, oldest first.
 */
connections: Array<ConnectionInfo>, };

export type WebhookKind = "message" | "connect" | "disconnect";

export type Delivery = { 
/**
 * Its number in this server run.
 */
id: number, 
/**
 * RFC 3339 time it started.
 */
ts: string, 
/**
 * Which hook.
 */
kind: WebhookKind, 
/**
 * Where it went.
 */
url: string, 
/**
 * The connection it is about.
 */
conn: string, 
/**
 * The JSON sent (the first 2 KiB).
 */
request: string, 
/**
 * Whether the backend answered 2xx.
 */
ok: boolean, 
/**
 * The last answer's status, if any came.
 */
status?: number, 
/**
 * Tries made.
 */
attempts: number, 
/**
 * Milliseconds from the first try to the end.
 */
duration_ms: number, 
/**
 * Why it failed.
 */
error?: string, 
/**
 * The last answer's body, whatever its status (the first 2 KiB).
 */
response?: string, 
/**
 * Whether the request is kept and can be re-sent.
 */
resendable: boolean, };

export type WebhooksResponse = { 
/**
 * The latest deliveries (up to 200), oldest first.
 */
deliveries: Array<Delivery>, };

export type KickRequest = { 
/**
 * Close code: 1000 (default) or 3000–4999.
 */
code?: number, 
/**
 * Close reason (default `closed from Sockpit`).
 */
reason?: string, };

export type Kicked = { 
/**
 * The connection's wire id.
 */
closed: string, 
/**
 * The close code sent.
 */
code: number, 
/**
 * The close reason sent.
 */
reason: string, };

export type ErrorBody = { 
/**
 * A short machine word: `unauthorized`, `bad_request`, …
 */
error: string, 
/**
 * What is wrong, for a person.
 */
detail: string, };

export type Verdict = "pass" | "warn" | "fail";

export type Check = { 
/**
 * What was checked, e.g. `server`, `endpoint /ws/echo/`, `token exp`.
 */
name: string, 
/**
 * The outcome.
 */
verdict: Verdict, 
/**
 * What was found.
 */
detail: string, 
/**
 * How to fix it (for warnings and failures).
 */
fix?: string, };

export type Report = { 
/**
 * No check failed.
 */
ok: boolean, 
/**
 * Every check, in order.
 */
checks: Array<Check>, };

export type DoctorRequest = { 
/**
 * A token to decode and explain.
 */
token?: string, 
/**
 * An Origin to check.
 */
origin?: string, };

export type EndpointInfo = { 
/**
 * The path pattern, e.g. `/ws/chat/{room}/`.
 */
path: string, 
/**
 * Names of its `{params}`.
 */
params: Array<string>, 
/**
 * Channel templates it joins.
 */
channels: Array<string>, 
/**
 * `jwt` or `none`.
 */
auth: string, 
/**
 * `broadcast`, `echo`, `drop` or `webhook`.
 */
on_message: string, 
/**
 * Whether a broadcast reaches its sender.
 */
echo_self: boolean, };

export type EndpointsResponse = { 
/**
 * The endpoints, in config order.
 */
endpoints: Array<EndpointInfo>, 
/**
 * Where tokens are looked for (`query:token`, `header`, `subprotocol`).
 */
token_sources: Array<string>, 
/**
 * The query parameter a browser should use for the token, if any.
 */
token_query?: string, 
/**
 * `allowed_origins` as written.
 */
allowed_origins: Array<string>, };

export type ConfigView = { 
/**
 * The file's text, or the defaults as TOML when there is no file yet.
 */
toml: string, 
/**
 * The file Settings writes, if this server has one.
 */
file?: string, 
/**
 * Whether the file exists yet.
 */
exists: boolean, 
/**
 * Why the file on disk does not load, if it does not.
 */
error?: string, 
/**
 * The port in force (after environment overrides).
 */
effective_port: number, };

export type Validated = { 
/**
 * Always true.
 */
ok: boolean, 
/**
 * `2 endpoints, port 8000`.
 */
summary: string, };

export type ConfigApplied = { 
/**
 * Always true.
 */
ok: boolean, 
/**
 * Always true: the owner restarts the server with the new config.
 */
restarting: boolean, 
/**
 * Where the restarted server answers.
 */
base_url: string, 
/**
 * Its UI login URL (a browser follows it after the restart).
 */
login_url: string, };

export type ConfigText = { 
/**
 * The whole TOML file.
 */
toml: string, };
