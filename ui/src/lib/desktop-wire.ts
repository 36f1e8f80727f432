// Generated from the Rust types in src-tauri/src/controller.rs by `SOCKPIT_UPDATE_WIRE=1 cargo test -p sockpit-desktop wire`.
// Do not edit by hand.

export type ServerState = "running" | "stopped" | "error";

export type PortHolder = { 
/**
 * Process id.
 */
pid: number, 
/**
 * Process name.
 */
name: string, };

export type Status = { 
/**
 * Running, stopped or error.
 */
state: ServerState, 
/**
 * The configured (or, when running, bound) port.
 */
port: number, 
/**
 * `http://127.0.0.1:8000` while running.
 */
base_url?: string, 
/**
 * The first endpoint's WebSocket URL while running.
 */
ws_url?: string, 
/**
 * The API key while running (the UI uses it to call the API).
 */
api_key?: string, 
/**
 * Open connections (kept current by the shell for the tooltip).
 */
connections: number, 
/**
 * Why the server is not running.
 */
error?: string, 
/**
 * Who holds the port, when the port was taken.
 */
holder?: PortHolder, 
/**
 * Whether a tray icon is shown (false where the tray library is missing).
 */
tray: boolean, };

export type Profile = { 
/**
 * Its name (the project folder's, made unique).
 */
name: string, 
/**
 * Its config file.
 */
file: string, 
/**
 * The Django project it was made from.
 */
project?: string, 
/**
 * Whether it is the one in force.
 */
active: boolean, };

export type ProjectPreview = { 
/**
 * The project's root.
 */
project: string, 
/**
 * The name the profile would get.
 */
name: string, 
/**
 * What was read from where: `[topic, what]`.
 */
report: Array<[string, string]>, 
/**
 * What was guessed rather than read.
 */
guesses: Array<string>, 
/**
 * Whether the project's own consumers serve its sockets (else Sockpit's endpoints).
 */
relays: boolean, 
/**
 * The config as it will be saved, its secret hidden.
 */
toml: string, };
