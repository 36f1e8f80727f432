// The only module that talks to the Tauri shell: every invoke() string and event name
// lives here. Outside Tauri (the browser UI) nothing here is called.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { Profile, ProjectPreview, Status } from "./desktop-wire";

/** True inside the desktop app's window. */
export function inTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

/** The events the shell emits (see src-tauri/src/lib.rs). */
const STATUS_EVENT = "sockpit://status";
const PROFILES_EVENT = "sockpit://profiles";
const OPEN_PROJECT_EVENT = "sockpit://open-project";

export const desktop = {
  status: () => invoke<Status>("status"),
  start: () => invoke<Status>("start"),
  stop: () => invoke<Status>("stop"),
  restart: () => invoke<Status>("restart"),
  useFreePort: () => invoke<Status>("use_free_port"),
  autostartEnabled: () => invoke<boolean>("autostart_enabled"),
  setAutostart: (on: boolean) => invoke<boolean>("set_autostart", { on }),
  copyText: (text: string) => invoke<void>("copy_text", { text }),
  onStatus: (cb: (s: Status) => void): Promise<UnlistenFn> =>
    listen<Status>(STATUS_EVENT, (e) => cb(e.payload)),
  profiles: () => invoke<Profile[]>("profiles"),
  switchProfile: (name: string) => invoke<Status>("switch_profile", { name }),
  inspectProject: (dir: string, python: string) => invoke<ProjectPreview>("inspect_project", { dir, python }),
  addProject: (dir: string, python: string) => invoke<Status>("add_project", { dir, python }),
  onProfiles: (cb: (p: Profile[]) => void): Promise<UnlistenFn> =>
    listen<Profile[]>(PROFILES_EVENT, (e) => cb(e.payload)),
  onOpenProject: (cb: () => void): Promise<UnlistenFn> => listen(OPEN_PROJECT_EVENT, () => cb()),
};

/** Copies text: through the shell in the desktop app, else the browser's clipboard. */
export function copyText(text: string): Promise<void> {
  return inTauri() ? desktop.copyText(text) : navigator.clipboard.writeText(text);
}
