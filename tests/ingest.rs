//! Ingestion for content teams, through the real `tessera` binary: re-runs skip what did not
//! change, shards split a catalog, `catalog check` lists every problem, a run killed at
//! random moments loses no acknowledged title and duplicates nothing, tags and metrics
//! (`ingest_tags.rs`), and a watching ingest swaps plugins without a restart
//! (`ingest_watch.rs`).

mod common;
#[path = "ingest_tags.rs"]
mod tags;
#[path = "ingest_watch.rs"]
mod watch;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_indexes::{EdgeStore, EntityStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Copies the example catalog and its posters into `dir`; returns the catalog path.
fn example_copy(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let posters = dir.join("posters");
    std::fs::create_dir_all(&posters)?;
    for entry in std::fs::read_dir(repo_root().join("examples/posters"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), posters.join(entry.file_name()))?;
    }
    let catalog = dir.join("catalog.jsonl");
    std::fs::copy(example_catalog(), &catalog)?;
    Ok(catalog)
}

fn ingest(catalog: &Path, data: &Path, model: &Path, extra: &[&str]) -> String {
    let output = run_ok(ingest_command(catalog, data, model).args(extra));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn reruns_skip_unchanged_titles_and_redo_changed_inputs() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let catalog = example_copy(tmp.path())?;
    let titles = tessera::catalog::read_jsonl(&catalog)?;
    let n = titles.len();

    let first = ingest(&catalog, &data, &model, &[]);
    assert!(
        first.contains(&format!("{n} of {n} titles stored, 0 failed")),
        "{first}"
    );
    let last_seq = {
        let store = EdgeStore::open_existing(&data.join("store"))?;
        store.changes(0, 10_000)?.last().map_or(0, |c| c.seq)
    };

    // Nothing changed: nothing is redone, and the change feed stays quiet.
    let second = ingest(&catalog, &data, &model, &[]);
    assert!(
        second.contains(&format!("{n} of {n} titles skipped")),
        "{second}"
    );
    assert!(second.contains("0 of 0 titles stored"), "{second}");
    {
        let store = EdgeStore::open_existing(&data.join("store"))?;
        assert!(store.changes(last_seq, 100)?.is_empty());
    }

    // One synopsis edited, one poster replaced: exactly those two are redone.
    let text = std::fs::read_to_string(&catalog)?;
    let edited = text.replacen(&titles[0].synopsis, "An entirely different story.", 1);
    std::fs::write(&catalog, edited)?;
    let poster = titles
        .iter()
        .skip(1)
        .find_map(|t| t.assets.first().map(|a| (t.id.clone(), a.path.clone())))
        .ok_or("no title with a poster")?;
    std::fs::copy(
        tmp.path().join("posters").join("tt-0001.png"),
        tmp.path()
            .join("posters")
            .join(poster.1.file_name().ok_or("poster name")?),
    )?;
    let third = ingest(&catalog, &data, &model, &[]);
    assert!(
        third.contains(&format!("{} of {n} titles skipped", n - 2)),
        "{third}"
    );
    assert!(third.contains("2 of 2 titles stored"), "{third}");
    {
        let store = EdgeStore::open_existing(&data.join("store"))?;
        let changed: HashSet<String> = store
            .changes(last_seq, 100)?
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(
            changed,
            HashSet::from([titles[0].id.clone(), poster.0.clone()])
        );
    }

    // --force redoes everything; --only-missing only what is not stored.
    let forced = ingest(&catalog, &data, &model, &["--force"]);
    assert!(
        forced.contains(&format!("{n} of {n} titles stored")),
        "{forced}"
    );
    let mut grown = std::fs::read_to_string(&catalog)?;
    grown.push_str("{\"id\":\"new-1\",\"name\":\"New\",\"synopsis\":\"A newcomer.\"}\n");
    std::fs::write(&catalog, grown)?;
    let missing = ingest(&catalog, &data, &model, &["--only-missing"]);
    assert!(
        missing.contains(&format!("{n} of {} titles skipped", n + 1)),
        "{missing}"
    );
    assert!(missing.contains("1 of 1 titles stored"), "{missing}");
    Ok(())
}

#[test]
fn shards_split_a_catalog_between_workers() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let catalog = example_copy(tmp.path())?;
    let n = tessera::catalog::read_jsonl(&catalog)?.len();
    let mut total = 0;
    for shard in ["0/2", "1/2"] {
        let out = ingest(&catalog, &data, &model, &["--shard", shard]);
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("shard {shard}: ")))
            .ok_or("no shard line")?;
        let size: usize = line.split_whitespace().nth(2).ok_or("no size")?.parse()?;
        assert!(size > 0 && size < n, "{line}");
        assert!(
            out.contains(&format!("{size} of {size} titles stored")),
            "{out}"
        );
        total += size;
    }
    assert_eq!(total, n);
    let store = EdgeStore::open_existing(&data.join("store"))?;
    assert_eq!(store.count()?, n);
    Ok(())
}

#[test]
fn catalog_check_lists_every_problem_in_each_layout() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let check = |path: &Path| -> Result<(Option<i32>, String), Box<dyn std::error::Error>> {
        let out = tessera().args(["catalog", "check"]).arg(path).output()?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    // The example catalog is clean.
    let (code, out) = check(&example_catalog())?;
    assert_eq!((code, out.as_str()), (Some(0), ""));

    let jsonl = tmp.path().join("c.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\":\"a\",\"name\":\"A\"}\n{\"id\":\"a\",\"name\":\"B\"}\nnot json\n{\"id\":\"c\",\"name\":\"C\",\"assets\":[{\"kind\":\"poster\",\"uri\":\"nope.png\"}]}\n",
    )?;
    let (code, out) = check(&jsonl)?;
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("line 2: [duplicate-id]"), "{out}");
    assert!(lines[1].contains("line 3: [malformed]"), "{out}");
    assert!(
        lines[2].contains("line 4: [missing-file]") && lines[2].contains("nope.png"),
        "{out}"
    );

    let csv = tmp.path().join("c.csv");
    std::fs::write(
        &csv,
        "id,name,year,asset.poster\nx,X,1999,\ny,Y,nineteen,\n",
    )?;
    let (code, out) = check(&csv)?;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("line 3: [malformed] year \"nineteen\""),
        "{out}"
    );

    let dir = tmp.path().join("titles");
    std::fs::create_dir_all(dir.join("t1"))?;
    std::fs::write(dir.join("t1/title.json"), "{\"id\":\"t1\",\"name\":\"T\"}")?;
    std::fs::write(dir.join("t1/poster.png"), b"not really a png")?;
    std::fs::create_dir_all(dir.join("t2"))?;
    let (code, out) = check(&dir)?;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("folder t2: [malformed]") && out.contains("title.json"),
        "{out}"
    );
    assert!(!out.contains("folder t1"), "{out}");

    // A title folder that cannot be listed (its title.json still readable) costs that title
    // alone. Root ignores permission bits, so as root the check runs without the capabilities
    // that let it (setpriv, util-linux).
    std::fs::create_dir_all(dir.join("t3"))?;
    std::fs::write(dir.join("t3/title.json"), "{\"id\":\"t3\",\"name\":\"T3\"}")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("t3"), std::fs::Permissions::from_mode(0o311))?;
    let root = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0");
    let mut command = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--bounding-set", "-dac_override,-dac_read_search"])
            .arg(env!("CARGO_BIN_EXE_tessera"));
        c
    } else {
        tessera()
    };
    let out = command
        .args(["catalog", "check", "--json"])
        .arg(&dir)
        .output()?;
    std::fs::set_permissions(dir.join("t3"), std::fs::Permissions::from_mode(0o755))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let t3: Vec<&serde_json::Value> = problems.iter().filter(|p| p["at"] == "folder t3").collect();
    assert_eq!(t3.len(), 1, "{stdout}");
    assert_eq!(t3[0]["kind"], "unreadable", "{stdout}");
    assert!(
        t3[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot list")),
        "{stdout}"
    );
    assert!(problems.iter().any(|p| p["at"] == "folder t2"), "{stdout}");
    Ok(())
}

/// A tiny deterministic generator for the kill schedule (the test must replay the same way).
struct Lcg(u64);

impl Lcg {
    fn next_millis(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

fn big_catalog(dir: &Path, n: usize) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let words = [
        "harbour",
        "detective",
        "comet",
        "orchard",
        "violin",
        "desert",
        "heist",
        "village",
        "robot",
        "winter",
        "river",
        "secret",
    ];
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let synopsis: Vec<&str> = (0..12)
                .map(|j| words[(i * 7 + j * 3) % words.len()])
                .collect();
            serde_json::json!({
                "id": format!("k-{i:04}"),
                "name": format!("Title {i}"),
                "synopsis": synopsis.join(" "),
                "year": 1990 + (i % 30),
                "language": "en",
            })
            .to_string()
        })
        .collect();
    let path = dir.join("big.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n")?;
    Ok(path)
}

#[test]
fn a_killed_ingest_loses_no_acknowledged_title_and_duplicates_nothing() -> TestResult {
    // Enough titles that a run lasts seconds (a title takes a few ms with the tiny model), so
    // the kills land mid-run.
    const TITLES: usize = 3000;
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let catalog = big_catalog(tmp.path(), TITLES)?;
    let data = tmp.path().join("data");
    let mut rng = Lcg(0x7e55_e7a0);
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut interrupted = 0;
    for round in 0..6 {
        let mut child = ingest_command(&catalog, &data, &model)
            .arg("--verbose")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(rng.next_millis(250, 1_500)));
        // SIGKILL: no cleanup, no flush, wherever the run is.
        let _ = child.kill();
        child.wait()?;
        let _ = reader.join();
        let lines = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let stored_now: Vec<String> = lines
            .iter()
            .filter_map(|l| l.trim_start().strip_prefix("stored"))
            .filter_map(|rest| rest.split_whitespace().next().map(str::to_string))
            .collect();
        if !lines.iter().any(|l| l.contains("titles stored")) {
            interrupted += 1;
        }
        acknowledged.extend(stored_now);
        // Every title a run acknowledged is in the store after the kill.
        if data.join("store").join("tessera-schema.json").exists() {
            let store = EdgeStore::open_existing(&data.join("store"))?;
            let ids: Vec<String> = acknowledged.iter().cloned().collect();
            let found = store.get(&ids)?;
            let lost: Vec<&String> = ids
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(id, _)| id)
                .collect();
            assert!(
                lost.is_empty(),
                "round {round}: acknowledged but lost: {lost:?}"
            );
        }
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} of 6 runs were killed mid-run"
    );
    assert!(!acknowledged.is_empty() && acknowledged.len() < TITLES);
    // A final run completes the catalog.
    let out = ingest(&catalog, &data, &model, &[]);
    assert!(out.contains("0 failed"), "{out}");

    // The store holds exactly the catalog, each title once, with the vectors a clean run makes.
    let clean = tmp.path().join("clean");
    ingest(&catalog, &clean, &model, &[]);
    let read_all = |dir: &Path| -> Result<BTreeMap<String, Vec<f32>>, Box<dyn std::error::Error>> {
        let vector = text_vector(dir);
        let store = EdgeStore::open_existing(&dir.join("store"))?;
        let mut all = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store.scan(cursor.as_deref(), 128, true)?;
            for e in page.entities {
                let v = e
                    .vectors
                    .get(&vector)
                    .cloned()
                    .ok_or("no synopsis vector")?;
                assert!(all.insert(e.id.clone(), v).is_none(), "{} twice", e.id);
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(all),
            }
        }
    };
    let killed = read_all(&data)?;
    let reference = read_all(&clean)?;
    assert_eq!(killed.len(), TITLES);
    assert_eq!(
        killed.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    for (id, v) in &killed {
        assert!(max_abs_diff(v, &reference[id]) < 1e-6, "{id} differs");
    }
    Ok(())
}

fn ingested_run(stdout: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(run_id(stdout).ok_or("no run id printed")?)
}

fn tessera_ok(args: &[&str], data: &Path) -> String {
    let out = run_ok(tessera().args(args).arg("--data").arg(data));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
