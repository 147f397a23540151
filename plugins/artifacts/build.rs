//! Builds the guest workspace in `plugins/` for wasm32-wasip2 and writes `plugins.rs` into
//! OUT_DIR: one path constant per plugin, the demo plugin's bytes, and any build error.
//!
//! A failed guest build does not fail the host build: the error is recorded and surfaces, in
//! full, from the first test or command that needs a plugin (as wasmtime's test-programs do), so
//! `cargo build` stays usable on a machine without the wasm target.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest crates (package names) that are components; the SDK is a library only.
const PLUGINS: [&str; 7] = [
    "synopsis-embedder",
    "sandbox-probe",
    "legacy-v0",
    "legacy-v1-0",
    "genre-tagger",
    "audio-mood",
    "content-advisory",
];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let plugins_dir = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let guest_target = out_dir.join("guest-target");

    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "sdk/Cargo.toml",
        "../wit/v0",
        "../wit/v1",
        "legacy-v1-0/wit",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            plugins_dir.join(watched).display()
        );
    }
    for plugin in PLUGINS {
        println!(
            "cargo:rerun-if-changed={}",
            plugins_dir.join(plugin).join("Cargo.toml").display()
        );
    }
    println!("cargo:rerun-if-env-changed=TESSERA_SKIP_PLUGIN_BUILD");

    let error = build_guests(&plugins_dir, &guest_target).err();
    if let Some(e) = &error {
        println!(
            "cargo:warning=tessera plugins were not built: {}",
            e.lines().next().unwrap_or("")
        );
    }

    let mut generated = String::new();
    let _ = writeln!(
        generated,
        "/// Why the guest build failed, if it did (the full compiler output).\npub const BUILD_ERROR: Option<&str> = {error:?};"
    );
    let mut names = Vec::new();
    for plugin in PLUGINS {
        let file = plugin.replace('-', "_");
        let built = guest_target
            .join(TARGET)
            .join("release")
            .join(format!("{file}.wasm"));
        let dest = out_dir.join(format!("{plugin}.wasm"));
        // Keep a file in place even after a failure so that `include_bytes!` compiles; its
        // emptiness plus BUILD_ERROR tell the runtime what happened.
        if error.is_none() && fs::copy(&built, &dest).is_ok() {
            emit_dep_info(&guest_target, &file);
        } else {
            let _ = fs::write(&dest, b"");
        }
        let konst = file.to_uppercase();
        let _ = writeln!(
            generated,
            "/// Path of the `{plugin}` component.\npub const {konst}: &str = {:?};",
            dest.display()
        );
        names.push((plugin, konst));
    }
    let _ = writeln!(
        generated,
        "/// Every plugin: (name, component path).\npub const ALL: &[(&str, &str)] = &["
    );
    for (plugin, konst) in &names {
        let _ = writeln!(generated, "    ({plugin:?}, {konst}),");
    }
    let _ = writeln!(generated, "];");
    let _ = writeln!(
        generated,
        "/// The `synopsis-embedder` component, embedded so that `tessera demo` needs no files.\npub const SYNOPSIS_EMBEDDER_WASM: &[u8] = include_bytes!({:?});",
        out_dir.join("synopsis-embedder.wasm").display()
    );
    let _ = writeln!(
        generated,
        "/// Calls `$m!(name)` once per plugin, so every plugin must have a test.\n#[macro_export]\nmacro_rules! foreach_plugin {{ ($m:ident) => {{"
    );
    for (plugin, _) in &names {
        let _ = writeln!(generated, "    $m!({});", plugin.replace('-', "_"));
    }
    let _ = writeln!(generated, "}}; }}");
    if let Err(e) = fs::write(out_dir.join("plugins.rs"), generated) {
        panic!("cannot write {}: {e}", out_dir.join("plugins.rs").display());
    }
}

fn build_guests(plugins_dir: &Path, guest_target: &Path) -> Result<(), String> {
    if env::var_os("TESSERA_SKIP_PLUGIN_BUILD").is_some() {
        return Err("TESSERA_SKIP_PLUGIN_BUILD is set".to_string());
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(plugins_dir)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(guest_target);
    // The outer build's flags and wrappers (clippy's driver, coverage, host RUSTFLAGS) are for the
    // host target; the guests get a clean environment. The jobserver (CARGO_MAKEFLAGS) is kept
    // so that the nested build shares the outer build's CPU budget.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo for the guest plugins: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("target may not be installed")
        || stderr.contains("can't find crate for `core`")
    {
        "the wasm32-wasip2 target is missing: run `rustup toolchain install` in the repository (rust-toolchain.toml lists the target)\n"
    } else {
        ""
    };
    Err(format!(
        "building the guest plugins for {TARGET} failed\n{hint}{stderr}"
    ))
}

/// Re-runs this build script when any source file of a guest changes, using rustc's dep-info.
fn emit_dep_info(guest_target: &Path, file: &str) {
    let dep_file = guest_target
        .join(TARGET)
        .join("release")
        .join(format!("{file}.d"));
    let Ok(contents) = fs::read_to_string(dep_file) else {
        return;
    };
    for line in contents.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        for dep in deps.split_whitespace() {
            if !dep.contains(".cargo/registry") && !dep.contains("guest-target") {
                println!("cargo:rerun-if-changed={dep}");
            }
        }
    }
}
