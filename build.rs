//! Points the embedded UI at `ui/dist`, or at a placeholder page when the UI has not
//! been built, so `cargo build` works on its own and says what is missing.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("ui").join("dist");
    println!("cargo:rerun-if-changed=ui/dist");
    let dir = if dist.join("index.html").exists() {
        dist
    } else {
        let out =
            PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("ui-missing");
        std::fs::create_dir_all(&out).expect("create OUT_DIR/ui-missing");
        std::fs::write(
            out.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Sockpit</title>\
             <p>This Sockpit binary was built without its UI. Run <code>make run</code>, or \
             <code>npm --prefix ui ci &amp;&amp; npm --prefix ui run build</code> and rebuild.</p>",
        )
        .expect("write placeholder");
        out
    };
    println!("cargo:rustc-env=SOCKPIT_UI_DIR={}", dir.display());
}
