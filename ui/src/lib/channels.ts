// The Overview's Channels table. Pure, tested in channels.test.ts.

type Counts = { [name in string]?: number };

export interface ChannelRow {
  name: string;
  /** Members on this instance. */
  here: number;
  /**
   * Members on all instances (the broker's count), or undefined when there is none:
   * no broker, Redis away, or the channel is not among the cluster's busiest 200.
   */
  all?: number;
}

/**
 * One row per channel with members here or, when `cluster` is given, on any instance;
 * busiest first (all instances, then here), then by name.
 */
export function channelRows(here: Counts, cluster?: Counts | null): ChannelRow[] {
  const names = new Set(Object.keys(here));
  if (cluster) for (const name of Object.keys(cluster)) names.add(name);
  const rows = [...names].map((name) => ({ name, here: here[name] ?? 0, all: cluster ? cluster[name] : undefined }));
  return rows.sort((a, b) => (b.all ?? 0) - (a.all ?? 0) || b.here - a.here || a.name.localeCompare(b.name));
}
