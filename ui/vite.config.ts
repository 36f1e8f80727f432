import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// `base: "./"` keeps asset URLs relative, so the same build loads from
// http://127.0.0.1:PORT/_sockpit/ and from the Tauri window.
export default defineConfig({
  base: "./",
  plugins: [svelte()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
  },
  server: {
    // `npm run dev` against a running `sockpit serve` on the default port.
    proxy: {
      "/_sockpit": { target: "http://127.0.0.1:8000", ws: true, changeOrigin: false },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
