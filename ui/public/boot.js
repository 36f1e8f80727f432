// Runs before the app (a file, not inline, so the page's CSP can forbid inline scripts).
// WebKitGTK under LANG=C reports navigator.language "C", which Intl (and so uPlot)
// rejects with a RangeError; fall back to a tag Intl accepts.
try {
  new Intl.NumberFormat(navigator.language);
} catch {
  Object.defineProperty(navigator, "language", { get: () => "en-US" });
}
// If the app cannot start, say why instead of showing a blank window.
addEventListener("error", (e) => {
  if (!document.getElementById("app")?.childElementCount) {
    document.body.textContent = "Sockpit's UI failed to start: " + (e.message || e.error);
  }
});
