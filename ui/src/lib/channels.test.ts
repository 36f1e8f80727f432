import { describe, expect, it } from "vitest";
import { channelRows } from "./channels";

describe("channelRows", () => {
  it("lists this instance's channels, busiest first, without a cluster", () => {
    expect(channelRows({ b: 1, a: 1, c: 5 })).toEqual([
      { name: "c", here: 5, all: undefined },
      { name: "a", here: 1, all: undefined },
      { name: "b", here: 1, all: undefined },
    ]);
    expect(channelRows({}, null)).toEqual([]);
  });
  it("adds the cluster-wide count, and the channels with members elsewhere only", () => {
    const rows = channelRows({ chat: 2, news: 1 }, { chat: 5, news: 1, alerts: 3 });
    expect(rows).toEqual([
      { name: "chat", here: 2, all: 5 },
      { name: "alerts", here: 0, all: 3 },
      { name: "news", here: 1, all: 1 },
    ]);
  });
  it("leaves the cluster count out for a channel the cluster list does not have", () => {
    // Beyond the cluster's busiest 200, or joined since the last presence round.
    expect(channelRows({ fresh: 1, chat: 1 }, { chat: 4 })).toEqual([
      { name: "chat", here: 1, all: 4 },
      { name: "fresh", here: 1, all: undefined },
    ]);
  });
});
