//! The desktop app: see the library for everything.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> anyhow::Result<()> {
    sockpit_desktop::main()
}
