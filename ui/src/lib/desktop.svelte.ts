// Desktop-only state: the server's status as the shell reports it. The window reads the
// status once on load (events sent before it listened are lost) and then follows the
// shell's status events; while running, the API base and key come from that status.
import { config, setConfig } from "./api";
import { reconnect, setRetryGate } from "./live.svelte";
import type { Profile, Status } from "./desktop-wire";
import { desktop, inTauri } from "./tauri";

export const shell = $state({
  /** Null outside the desktop app. */
  status: null as Status | null,
  busy: false,
  error: "",
  lastState: null as Status["state"] | null,
  /** The config profiles ("Default" and one per Django project opened). */
  profiles: [] as Profile[],
});

/** `onRunning` starts the live view and says whether it started just now. */
type OnRunning = () => boolean;

function apply(s: Status, onRunning: OnRunning): void {
  shell.status = s;
  if (s.state === "running" && s.base_url) {
    const base = `${s.base_url}/_sockpit`;
    const moved = config().base !== base || config().key !== s.api_key;
    setConfig({ base, key: s.api_key });
    const startedNow = onRunning();
    // After Start, Restart or a new port: connect now, not after the backoff.
    if (!startedNow && (moved || shell.lastState !== "running")) reconnect();
  }
  shell.lastState = s.state;
}

/** In the desktop app, follows the shell's status; `onRunning` starts the live view. */
export async function startDesktop(onRunning: OnRunning): Promise<boolean> {
  if (!inTauri()) return false;
  // While the shell says the server is down, the events socket waits for it.
  setRetryGate(() => shell.status?.state === "running");
  await desktop.onStatus((s) => apply(s, onRunning));
  await desktop.onProfiles((p) => (shell.profiles = p));
  apply(await desktop.status(), onRunning);
  shell.profiles = await desktop.profiles();
  return true;
}

/** The error text of a failed command (`{kind, message}` or a string). */
export function errorText(e: unknown): string {
  const err = e as { message?: string } | string;
  return typeof err === "string" ? err : (err.message ?? String(e));
}

/** Runs a lifecycle action, showing its error instead of throwing. */
export async function act(action: "start" | "stop" | "restart" | "useFreePort"): Promise<void> {
  shell.busy = true;
  shell.error = "";
  try {
    // The status itself arrives as an event; the reply only ends the busy state.
    await desktop[action]();
  } catch (e) {
    shell.error = errorText(e);
  } finally {
    shell.busy = false;
  }
}
