//! `tessera ingest --watch` through the real binary: it follows the catalog, reloads a plugin
//! replaced on disk while a call is in flight (the call finishes on the old version), applies
//! `tessera plugin disable`, refuses a reload whose sha256 does not match, does not retry a
//! failed title, and stops on SIGTERM with everything stored.

use super::TestResult;
use crate::common::*;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_indexes::{EdgeStore, EntityStore};

/// Lines a child printed so far, on stdout and stderr, collected by reader threads.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(&self, stream: impl Read + Send + 'static, prefix: &'static str) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{prefix}{line}"));
            }
        });
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Index of the first line containing every one of `parts`, waiting up to 60 s for it.
    fn wait_for(&self, parts: &[&str]) -> Result<usize, String> {
        let start = Instant::now();
        loop {
            if let Some(i) = self
                .all()
                .iter()
                .position(|l| parts.iter().all(|p| l.contains(p)))
            {
                return Ok(i);
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "no line with {parts:?} within 60 s; the watch printed:\n{}",
                    self.all().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn count(&self, parts: &[&str]) -> usize {
        self.all()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }
}

/// A running watch and what it printed; killed if the test fails before stopping it.
struct Watch(Child);

impl Watch {
    /// Starts `command` (an ingest with `--watch`) and follows its output.
    fn start(
        command: &mut std::process::Command,
    ) -> Result<(Watch, Lines), Box<dyn std::error::Error>> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let lines = Lines::default();
        lines.follow(child.stdout.take().ok_or("no stdout")?, "");
        lines.follow(child.stderr.take().ok_or("no stderr")?, "stderr: ");
        Ok((Watch(child), lines))
    }

    /// SIGTERM, as an operator stops it: it must exit 0 after its closing line.
    fn stop(mut self, lines: &Lines) -> TestResult {
        let pid = self.0.id().to_string();
        run_ok(std::process::Command::new("kill").args(["-TERM", &pid]));
        let status = self.0.wait()?;
        assert!(status.success(), "{status}\n{}", lines.all().join("\n"));
        lines.wait_for(&["watch stopped:"])?;
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn line(id: &str, probe: &str, target: &str) -> String {
    serde_json::json!({
        "id": id, "name": id, "synopsis": format!("The story of {id}."), "language": "en",
        "metadata": {"probe": probe, "target": target}
    })
    .to_string()
        + "\n"
}

fn append(catalog: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(catalog)?;
    file.write_all(text.as_bytes())
}

/// Replaces a file the way an operator's deploy should: a new file renamed over the old.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Copies the sandbox probe into `dir` with a manifest beside it (allowed the `text` model);
/// returns the manifest's path and text.
fn probe_with_manifest(
    dir: &Path,
) -> Result<(std::path::PathBuf, String), Box<dyn std::error::Error>> {
    let probe = dir.join("probe.wasm");
    std::fs::copy(tessera_plugin_artifacts::SANDBOX_PROBE, &probe)?;
    let manifest = String::from_utf8(
        run_ok(
            tessera()
                .args(["plugin", "manifest", "--models", "text"])
                .arg(&probe),
        )
        .stdout,
    )?;
    let path = dir.join("probe.toml");
    std::fs::write(&path, &manifest)?;
    Ok((path, manifest))
}

#[test]
fn a_watch_follows_the_catalog_and_swaps_plugins_without_a_restart() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let embedder = plugins.join("embedder.wasm");
    std::fs::copy(tessera_plugin_artifacts::SYNOPSIS_EMBEDDER, &embedder)?;
    let (probe_manifest, manifest) = probe_with_manifest(&plugins)?;
    let first_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .ok_or("no version in the manifest")?
        .trim_matches('"')
        .to_string();

    let catalog = tmp.path().join("catalog.jsonl");
    std::fs::write(
        &catalog,
        line("quick", "ok", "") + &line("slow", "sleep", "2500"),
    )?;
    let (watch, lines) = Watch::start(
        ingest_command(&catalog, &data, &model)
            .args(["--watch", "--poll-ms", "100", "--concurrency", "2"])
            .args(["--plugin-deadline-ms", "20000"])
            .arg("--plugin")
            .arg(&probe_manifest)
            .arg("--plugin")
            .arg(&embedder),
    )?;

    // While `slow` is in the plugin, a new version of the probe is deployed.
    lines.wait_for(&["stored", "quick"])?;
    replace(
        &probe_manifest,
        &(manifest.replace(
            &format!("version = \"{first_version}\""),
            "version = \"9.0.0\"",
        ) + "version = \"9.0.0\"\n"),
    )?;
    let reloaded = lines.wait_for(&[&format!(
        "plugin sandbox-probe reloaded: {first_version} -> 9.0.0"
    )])?;
    let slow_stored = lines.wait_for(&["stored", "slow"])?;
    assert!(
        reloaded < slow_stored,
        "the reload waited for the call in flight:\n{}",
        lines.all().join("\n")
    );
    // The new version makes both titles stale: a second pass redoes them.
    lines.wait_for(&["pass 2: 2 of 2 titles stored, 0 failed"])?;

    // An operator switches the embedder off; titles from now on run the probe alone. `quick`
    // is edited meanwhile: it is redone with the probe and keeps what the embedder stored.
    run_ok(
        tessera()
            .args(["plugin", "disable", "synopsis-embedder", "--data"])
            .arg(&data),
    );
    lines.wait_for(&["plugin synopsis-embedder disabled"])?;
    // A name that no loaded plugin has (a typo) switches nothing; the watch says so, once.
    run_ok(
        tessera()
            .args(["plugin", "disable", "sandbox-prob", "--data"])
            .arg(&data),
    );
    let typo = "disables \"sandbox-prob\", which is none of the loaded plugins";
    lines.wait_for(&["stderr: ", typo])?;
    let edited = std::fs::read_to_string(&catalog)?
        .replace("The story of quick.", "The new story of quick.")
        + &line("fresh", "ok", "")
        + &line("broken", "panic", "");
    replace(&catalog, &edited)?;
    lines.wait_for(&["stored", "fresh"])?;
    lines.wait_for(&["FAILED", "broken"])?;
    assert_eq!(lines.count(&["stored", "quick"]), 3, "{:?}", lines.all());

    // A manifest whose sha256 is not the component's is refused; the running version stays.
    let bad = std::fs::read_to_string(&probe_manifest)?;
    let sha = bad
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = "))
        .ok_or("no sha256")?
        .trim_matches('"')
        .to_string();
    replace(
        &probe_manifest,
        &bad.replace(&sha, &"0".repeat(64))
            .replace("version = \"9.0.0\"", "version = \"10.0.0\""),
    )?;
    lines.wait_for(&[
        "stderr: ",
        "reload of",
        "refused; version 9.0.0 keeps running",
        "sha256",
    ])?;
    // Still working, still on 9.0.0; the failed title is not retried for an unrelated change.
    append(&catalog, &line("later", "ok", ""))?;
    lines.wait_for(&["stored", "later"])?;
    assert_eq!(lines.count(&["FAILED", "broken"]), 1, "{:?}", lines.all());

    // Switched on again: the titles stored meanwhile lack its outputs, so they are redone, and
    // the failed title gets another try with the changed plugins.
    run_ok(
        tessera()
            .args(["plugin", "enable", "synopsis-embedder", "--data"])
            .arg(&data),
    );
    lines.wait_for(&["plugin synopsis-embedder enabled"])?;
    assert_eq!(lines.count(&[typo]), 1, "{:?}", lines.all());
    lines.wait_for(&["pass 5: 2 of 3 titles stored, 1 failed"])?;
    assert_eq!(lines.count(&["FAILED", "broken"]), 2, "{:?}", lines.all());

    watch.stop(&lines)?;

    let store = EdgeStore::open_existing(&data.join("store"))?;
    let ids: Vec<String> = ["quick", "slow", "fresh", "later", "broken"]
        .map(String::from)
        .to_vec();
    let got = store.get(&ids)?;
    let probe9 = ("sandbox-probe".to_string(), "9.0.0".to_string());
    for (id, entity) in ids.iter().zip(&got).take(4) {
        let entity = entity.as_ref().ok_or(format!("{id} not stored"))?;
        let held: Vec<(String, String)> = entity
            .outputs
            .iter()
            .map(|o| (o.plugin.clone(), o.version.clone()))
            .collect();
        assert!(held.contains(&probe9), "{id}: {held:?}");
        assert!(
            held.iter().any(|(p, _)| p == "synopsis-embedder"),
            "{id}: {held:?}"
        );
        assert!(!entity.vectors.is_empty(), "{id}");
    }
    assert!(got[4].is_none(), "a failed title is not stored");

    // The run log holds each version of a title as it was stored: `slow` first from the probe
    // version its call started on; `quick`, edited while the embedder was off, with the
    // embedder's earlier tags; `fresh` first without the embedder.
    let run = run_id(&lines.all().join("\n")).ok_or("no run id")?;
    let log = std::fs::read_to_string(data.join("runs").join(format!("{run}.tags.jsonl")))?;
    let stored: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let plugins_of = |id: &str| -> Vec<Vec<String>> {
        stored
            .iter()
            .filter(|v| v["id"] == id)
            .map(|v| {
                let mut seen: Vec<String> = v["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{}@{}",
                            t["plugin"].as_str().unwrap_or("?"),
                            t["plugin_version"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                seen.sort();
                seen.dedup();
                seen
            })
            .collect()
    };
    let slow = plugins_of("slow");
    assert_eq!(slow.len(), 2, "{slow:?}");
    assert!(
        slow[0].contains(&format!("sandbox-probe@{first_version}")),
        "{slow:?}"
    );
    assert!(
        slow[1].contains(&"sandbox-probe@9.0.0".to_string()),
        "{slow:?}"
    );
    let quick = plugins_of("quick");
    assert_eq!(quick.len(), 3, "{quick:?}");
    assert!(
        quick[2].contains(&"sandbox-probe@9.0.0".to_string())
            && quick[2].iter().any(|p| p.starts_with("synopsis-embedder@")),
        "redone while the embedder was off, `quick` keeps the embedder's tags: {quick:?}"
    );
    let fresh = plugins_of("fresh");
    assert_eq!(fresh.len(), 2, "{fresh:?}");
    assert!(
        !fresh[0].iter().any(|p| p.starts_with("synopsis-embedder@")),
        "{fresh:?}"
    );
    assert!(
        fresh[1].iter().any(|p| p.starts_with("synopsis-embedder@")),
        "{fresh:?}"
    );
    Ok(())
}

#[test]
fn plugin_enable_and_disable_switch_batch_ingests_too() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let catalog = tmp.path().join("catalog.jsonl");
    std::fs::write(&catalog, line("one", "ok", ""))?;
    let disabled = run_ok(
        tessera()
            .args(["plugin", "disable", "synopsis-embedder", "--data"])
            .arg(&data),
    );
    assert!(
        String::from_utf8_lossy(&disabled.stdout).contains("plugin synopsis-embedder disabled")
    );
    // With every plugin off there is nothing to run: a clear error (exit 2, like every error
    // that stops a run before it starts).
    let out = ingest_command(&catalog, &data, &model).output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("every plugin is disabled") && stderr.contains("plugin-control.toml"),
        "{stderr}"
    );
    let bad = tessera()
        .args(["plugin", "disable", "two\nlines", "--data"])
        .arg(&data)
        .output()?;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a plugin name"));

    run_ok(
        tessera()
            .args(["plugin", "enable", "synopsis-embedder", "--data"])
            .arg(&data),
    );
    let out = run_ok(&mut ingest_command(&catalog, &data, &model));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 of 1 titles stored"));

    // A name that no loaded plugin has (a typo) is accepted by `disable`, which cannot know
    // what a later ingest loads; the ingest runs every plugin and says which name matched none.
    run_ok(
        tessera()
            .args(["plugin", "disable", "synopsis-embeder", "--data"])
            .arg(&data),
    );
    std::fs::write(&catalog, line("one", "edited", ""))?;
    let out = run_ok(&mut ingest_command(&catalog, &data, &model));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 of 1 titles stored"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("disables \"synopsis-embeder\", which is none of the loaded plugins")
            && stderr.contains("synopsis-embedder"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_batch_ingest_keeps_what_a_disabled_plugin_stored() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let (manifest, _) = probe_with_manifest(tmp.path())?;
    let catalog = tmp.path().join("catalog.jsonl");
    std::fs::write(&catalog, line("one", "ok", ""))?;
    let ingest = || {
        let mut command = ingest_command(&catalog, &data, &model);
        command
            .arg("--plugin")
            .arg(&manifest)
            .arg("--plugin")
            .arg(tessera_plugin_artifacts::SYNOPSIS_EMBEDDER);
        command
    };
    run_ok(&mut ingest());
    run_ok(
        tessera()
            .args(["plugin", "disable", "synopsis-embedder", "--data"])
            .arg(&data),
    );
    // Edited while the embedder is off: redone by the probe alone, keeping the embedder's part.
    let edited = std::fs::read_to_string(&catalog)?.replace("The story", "The new story");
    std::fs::write(&catalog, edited)?;
    let out = run_ok(&mut ingest());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 of 1 titles stored"));
    let store = EdgeStore::open_existing(&data.join("store"))?;
    let entity = store
        .get(&["one".to_string()])?
        .remove(0)
        .ok_or("one is not stored")?;
    let plugins: Vec<&str> = entity.outputs.iter().map(|o| o.plugin.as_str()).collect();
    assert!(plugins.contains(&"sandbox-probe"), "{plugins:?}");
    assert!(plugins.contains(&"synopsis-embedder"), "{plugins:?}");
    assert!(
        entity.tags.iter().any(|t| t.plugin == "synopsis-embedder"),
        "{:?}",
        entity.tags
    );
    assert!(!entity.vectors.is_empty());
    Ok(())
}

#[test]
fn a_watch_with_serve_answers_rankers_as_titles_are_stored() -> TestResult {
    use tessera::grpc::proto::{
        GetEntitiesRequest, GetSchemaRequest, SearchRequest, WatchEntitiesRequest,
        entities_client::EntitiesClient, search_request::Query,
    };
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let catalog = tmp.path().join("catalog.jsonl");
    std::fs::write(&catalog, line("first", "ok", ""))?;
    let metrics = tmp.path().join("metrics/ingest.prom");
    let (watch, lines) = Watch::start(
        ingest_command(&catalog, &data, &model)
            .args(["--watch", "--poll-ms", "100", "--serve", "127.0.0.1:0"])
            .arg("--metrics-file")
            .arg(&metrics),
    )?;
    let at = lines.wait_for(&["tessera: serving gRPC on "])?;
    let addr = lines.all()[at]
        .trim_start_matches("tessera: serving gRPC on ")
        .split_whitespace()
        .next()
        .ok_or("no address")?
        .to_string();
    lines.wait_for(&["stored", "first"])?;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{addr}")).await?;
        let get = |ids: &[&str]| GetEntitiesRequest {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let found: Vec<bool> = client
            .get_entities(get(&["first", "second"]))
            .await?
            .into_inner()
            .results
            .iter()
            .map(|r| r.found)
            .collect();
        assert_eq!(found, [true, false]);
        // A followed change feed sees the next pass as it is written.
        let mut feed = client
            .watch_entities(WatchEntitiesRequest {
                after_seq: 0,
                page_size: 0,
                follow: true,
            })
            .await?
            .into_inner();
        append(&catalog, &line("second", "ok", ""))?;
        let mut seen = Vec::new();
        while !seen.iter().any(|id| id == "second") {
            let message = tokio::time::timeout(Duration::from_secs(60), feed.message())
                .await
                .map_err(|_| format!("no change for `second` within 60 s; seen {seen:?}"))??
                .ok_or("the followed feed ended")?;
            seen.extend(message.changes.into_iter().map(|c| c.id));
        }
        assert_eq!(seen.first().map(String::as_str), Some("first"));
        let second = client.get_entities(get(&["second"])).await?.into_inner();
        let entity = second.results[0]
            .entity
            .as_ref()
            .ok_or("second not found")?;
        // The one vector the schema lists is the text model's, and the title has it.
        let schema = client.get_schema(GetSchemaRequest {}).await?.into_inner();
        let [vector] = schema.vectors.as_slice() else {
            return Err(format!("{schema:?}").into());
        };
        assert!(vector.name.starts_with("text/tiny-model@"), "{vector:?}");
        assert!(entity.vectors.contains_key(&vector.name), "{entity:?}");
        // Text queries are embedded by the ingest's own text model.
        let hits = client
            .search(SearchRequest {
                vector_name: vector.name.clone(),
                query: Some(Query::Text("The story of second.".into())),
                limit: 2,
                ..Default::default()
            })
            .await?
            .into_inner()
            .hits;
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].id, "second");

        // A title the server has answered before (so its entity cache holds it) is answered as
        // rewritten once the rewrite is in the feed, not as it was.
        let updated = |response: tessera::grpc::proto::GetEntitiesResponse| {
            response.results[0]
                .entity
                .as_ref()
                .map(|e| e.updated_unix_ms)
                .ok_or("first not found")
        };
        let before = updated(client.get_entities(get(&["first"])).await?.into_inner())?;
        assert_eq!(
            updated(client.get_entities(get(&["first"])).await?.into_inner())?,
            before
        );
        replace(
            &catalog,
            &(line("first", "ok", "edited") + &line("second", "ok", "")),
        )?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), feed.message())
                .await
                .map_err(|_| "no change for the edited `first` within 60 s")??
                .ok_or("the followed feed ended")?;
            if message.changes.iter().any(|c| c.id == "first") {
                break;
            }
        }
        let after = updated(client.get_entities(get(&["first"])).await?.into_inner())?;
        assert!(
            after > before,
            "the edited title was answered from a stale copy (updated {after} ms, before {before} ms)"
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;

    watch.stop(&lines)?;
    // The metrics file counts the whole session's titles: two, and the edited one again.
    let prom = std::fs::read_to_string(&metrics)?;
    assert!(
        prom.lines()
            .any(|l| l.starts_with("tessera_ingest_titles_done{") && l.ends_with(" 3")),
        "{prom}"
    );

    // An address in use stops the watch before any title is processed.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let out = ingest_command(&catalog, &data, &model)
        .args(["--watch", "--serve"])
        .arg(taken.local_addr()?.to_string())
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("binding 127.0.0.1:"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("pass 1"));
    Ok(())
}
