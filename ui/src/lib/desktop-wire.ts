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
