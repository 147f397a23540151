//! Helpers shared by the end-to-end tests: temp dirs, the real `tessera` binary, a tiny model.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The `tessera` binary cargo built for these tests.
pub fn tessera() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    // Never pick up a developer's real HF cache or data: each test says what it wants.
    command
        .env("HF_HUB_CACHE", "/nonexistent-tessera-test-cache")
        .env_remove("TESSERA_TEXT_MODEL")
        .env_remove("TESSERA_DATA")
        .env_remove("TESSERA_STORE");
    command.stdin(Stdio::null());
    command
}

/// Runs a command to completion, printing its output when it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example catalog.
pub fn example_catalog() -> PathBuf {
    repo_root().join("examples/catalog.jsonl")
}

/// Writes the default tiny model into `dir`.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let model = dir.join("tiny-model");
    tessera_models::tiny::write_tiny_bert(&model, &tessera_models::tiny::TinyBertSpec::default())
        .unwrap_or_else(|e| panic!("writing tiny model: {e}"));
    model
}

/// `tessera ingest CATALOG --data DATA --text-model MODEL`, ready for more arguments.
pub fn ingest_command(catalog: &Path, data: &Path, model: &Path) -> Command {
    let mut command = tessera();
    command
        .arg("ingest")
        .arg(catalog)
        .arg("--data")
        .arg(data)
        .arg("--text-model")
        .arg(model);
    command
}

/// The run id an ingest printed (`run …`).
pub fn run_id(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .map(str::to_string)
}

/// Ingests the example catalog into `dir`/data with a tiny model written to `dir`; returns
/// (data dir, model dir).
pub fn ingest_example(dir: &Path) -> (PathBuf, PathBuf) {
    let model = tiny_model(dir);
    let data = dir.join("data");
    run_ok(&mut ingest_command(&example_catalog(), &data, &model));
    (data, model)
}

/// The name of the one dense text vector of the embedded store under `data`
/// (`text/<model>@<revision>`: plugin outputs are stored under their model's identity). The
/// store is closed again before this returns.
pub fn text_vector(data: &Path) -> String {
    use tessera_indexes::EntityStore;
    let store = tessera_indexes::EdgeStore::open_existing(&data.join("store"))
        .unwrap_or_else(|e| panic!("{e}"));
    let name = store.schema().named("text");
    match name {
        Ok(Some(name)) => name,
        other => panic!("no single text vector in {:?}: {other:?}", store.schema()),
    }
}

/// A `tessera serve` child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// The metrics endpoint (`host:port`), when serve was started with `--metrics-listen`.
    pub metrics: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tessera serve` on a free port and waits for the line that names it.
pub fn serve(data: &Path) -> Server {
    serve_with::<&str>(data, &[])
}

/// Starts `tessera serve` with extra arguments, like [`serve`].
pub fn serve_with<S: AsRef<std::ffi::OsStr>>(data: &Path, extra: &[S]) -> Server {
    let mut child = tessera()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tessera serve: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut metrics = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("tessera: metrics on http://") {
                metrics = rest.strip_suffix("/metrics").map(str::to_string);
            }
            if let Some(rest) = line.strip_prefix("tessera: serving gRPC on ") {
                let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send((addr, metrics.take()));
            }
        }
    });
    let (addr, metrics) = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(found) => found,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tessera serve did not report its address");
        }
    };
    Server {
        child,
        addr,
        metrics,
    }
}

/// Largest absolute difference between two vectors.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A registry with a tiny text model (`text`), a tiny CLIP (`clip`: text and image towers,
/// softmax zero-shot), a tiny SigLIP (`siglip`: sigmoid zero-shot) and a tiny Whisper encoder
/// (`whisper`), written under `dir`.
pub fn media_registry(dir: &Path) -> tessera_models::Registry {
    use std::sync::Arc;
    use tessera_models::batching::BatchConfig;
    use tessera_models::loader::load_dir;
    use tessera_models::tiny::{
        TinyClipSpec, TinySiglipSpec, TinyWhisperSpec, write_tiny_clip, write_tiny_siglip,
        write_tiny_whisper,
    };
    use tessera_models::{Device, SentenceEncoder, TextEmbedder};

    // Each model is named by its identity (`name@revision`), as the host loads them.
    let identity = |name: &str, path: &Path| {
        tessera_models::identity::identity(name, path).unwrap_or_else(|e| panic!("{e}"))
    };
    let text = tiny_model(dir);
    let encoder = SentenceEncoder::load(&text, &identity("tiny", &text), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut registry = tessera_models::Registry::default();
    registry.insert_text("text", Arc::new(encoder) as Arc<dyn TextEmbedder>);
    let clip = dir.join("clip");
    write_tiny_clip(&clip, &TinyClipSpec::default()).unwrap_or_else(|e| panic!("{e}"));
    let siglip = dir.join("siglip");
    write_tiny_siglip(&siglip, &TinySiglipSpec::default()).unwrap_or_else(|e| panic!("{e}"));
    let whisper = dir.join("whisper");
    write_tiny_whisper(&whisper, &TinyWhisperSpec::default()).unwrap_or_else(|e| panic!("{e}"));
    for (name, path) in [("clip", &clip), ("siglip", &siglip), ("whisper", &whisper)] {
        let loaded =
            load_dir(path, &identity(name, path), &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
        registry
            .insert_batched(name, &loaded, &BatchConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    registry
}

/// `GET /metrics` from a `tessera serve` metrics endpoint, over a plain socket.
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot reach the metrics endpoint {addr}: {e}"));
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: tessera\r\n\r\n")
        .unwrap_or_else(|e| panic!("metrics request: {e}"));
    let mut response = String::new();
    socket
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("metrics response: {e}"));
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    response
}
