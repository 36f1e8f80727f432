// Desktop-only state: the server's status as the shell reports it. The window reads the
// status once on load (events sent before it listened are lost) and then follows the
// shell's status events; while running, the API base and key come from that status.
import { setConfig } from "./api";
import type { Status } from "./desktop-wire";
import { desktop, inTauri } from "./tauri";

export const shell = $state({
  /** Null outside the desktop app. */
  status: null as Status | null,
  busy: false,
  error: "",
});

function apply(s: Status, onRunning: () => void): void {
  shell.status = s;
  if (s.state === "running" && s.base_url) {
    setConfig({ base: `${s.base_url}/_sockpit`, key: s.api_key });
    onRunning();
  }
}

/** In the desktop app, follows the shell's status; `onRunning` starts the live view. */
export async function startDesktop(onRunning: () => void): Promise<boolean> {
  if (!inTauri()) return false;
  await desktop.onStatus((s) => apply(s, onRunning));
  apply(await desktop.status(), onRunning);
  return true;
}

/** Runs a lifecycle action, showing its error instead of throwing. */
export async function act(action: "start" | "stop" | "restart" | "useFreePort"): Promise<void> {
  shell.busy = true;
  shell.error = "";
  try {
    shell.status = await desktop[action]();
  } catch (e) {
    const err = e as { message?: string } | string;
    shell.error = typeof err === "string" ? err : (err.message ?? String(e));
  } finally {
    shell.busy = false;
  }
}
