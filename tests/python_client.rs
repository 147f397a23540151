//! The Python ranker example (examples/python/ranker.py, grpcio) against the real `tessera serve`
//! with a tokens file: lookups, search, a paged scan and the token check, as a ranker team would
//! call them. Needs `TESSERA_TEST_PYTHON`, an interpreter with examples/python/requirements.txt
//! installed (`bash examples/python/setup.sh DIR` makes one at DIR/bin/python; `.ci/run` does);
//! skipped without it, except under CI, where its absence fails.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tessera::catalog;
use tessera_indexes::{EdgeStore, EntityStore};

/// The interpreter to run the example with, or None (after saying so) when the test is skipped.
fn python() -> Option<PathBuf> {
    match std::env::var_os("TESSERA_TEST_PYTHON") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "TESSERA_TEST_PYTHON is not set, and CI must run the Python client test: \
             `bash examples/python/setup.sh DIR` and set TESSERA_TEST_PYTHON=DIR/bin/python \
             (.ci/run does both)"
        ),
        _ => {
            println!(
                "skipping: set TESSERA_TEST_PYTHON (bash examples/python/setup.sh DIR; DIR/bin/python)"
            );
            None
        }
    }
}

/// A token nobody can guess from the test's source.
fn random_token() -> String {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
}

/// `python examples/python/ranker.py --addr ADDR ARGS...`, with the stubs importable and no
/// token from the developer's environment.
fn ranker(python: &Path, addr: &str, args: &[&str]) -> Command {
    let examples = repo_root().join("examples/python");
    let mut command = Command::new(python);
    command
        .arg(examples.join("ranker.py"))
        .args(["--addr", addr])
        .args(args)
        .env("PYTHONPATH", &examples)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("TESSERA_TOKEN")
        .stdin(Stdio::null());
    command
}

#[test]
fn python_ranker_example_against_a_real_server() -> Result<(), Box<dyn std::error::Error>> {
    let Some(python) = python() else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;

    // The checked-in stubs are what generate.sh makes from the current proto.
    let fresh = tmp.path().join("stubs/tessera/v1");
    std::fs::create_dir_all(&fresh)?;
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("examples/python/generate.sh"))
            .arg(&python)
            .env("TESSERA_STUBS_OUT", &fresh),
    );
    for file in [
        "entities_pb2.py",
        "entities_pb2.pyi",
        "entities_pb2_grpc.py",
    ] {
        let checked_in = std::fs::read(repo_root().join("examples/python/tessera/v1").join(file))?;
        assert!(
            std::fs::read(fresh.join(file))? == checked_in,
            "examples/python/tessera/v1/{file} is stale: run `bash examples/python/generate.sh PYTHON`"
        );
    }

    let (data, _model) = ingest_example(tmp.path());
    let titles = catalog::read_jsonl(&example_catalog())?;
    let with_vector = titles
        .iter()
        .find(|t| !t.synopsis.trim().is_empty())
        .ok_or("the example catalog has no title with a synopsis")?
        .id
        .clone();
    let without_vector = titles
        .iter()
        .find(|t| t.synopsis.trim().is_empty())
        .ok_or("the example catalog has no title without a synopsis")?
        .id
        .clone();

    // What the store holds, read before the server opens it: each title's vector dimensions.
    let stored_dims: BTreeMap<String, BTreeMap<String, usize>> = {
        let store = EdgeStore::open_existing(&data.join("store"))?;
        let ids: Vec<String> = titles.iter().map(|t| t.id.clone()).collect();
        store
            .get(&ids)?
            .into_iter()
            .flatten()
            .map(|e| {
                let dims = e
                    .vectors
                    .iter()
                    .map(|(n, v)| (n.clone(), v.len()))
                    .collect();
                (e.id, dims)
            })
            .collect()
    };
    assert_eq!(stored_dims.len(), titles.len());
    // The plugin's vector is stored under the text model's identity.
    let text_vector = text_vector(&data);
    assert!(
        stored_dims[&with_vector].contains_key(&text_vector),
        "{stored_dims:?}"
    );
    let with_synopsis: HashSet<&str> = stored_dims
        .iter()
        .filter(|(_, dims)| dims.contains_key(&text_vector))
        .map(|(id, _)| id.as_str())
        .collect();

    let token = random_token();
    let tokens = tmp.path().join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "# ranker teams\n\nranker-a:{token}\nranker-b:{}\n",
            random_token()
        ),
    )?;
    let server = serve_with(&data, &[OsStr::new("--tokens-file"), tokens.as_os_str()]);

    let out = run_ok(&mut ranker(
        &python,
        &server.addr,
        &[
            "--token",
            &token,
            "check",
            "--ids",
            &with_vector,
            &without_vector,
            "no-such-title",
            "--vector",
            "text",
            "--query",
            &with_vector,
            "--limit",
            "5",
            "--page-size",
            "4",
        ],
    ));
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "ranker.py check printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;

    // GetEntities: found or not, and exactly the store's vectors.
    for id in [&with_vector, &without_vector] {
        let result = &check["get"][id.as_str()];
        assert_eq!(result["found"], true, "{id}: {check}");
        let dims: BTreeMap<String, usize> = serde_json::from_value(result["dims"].clone())?;
        assert_eq!(dims, stored_dims[id.as_str()], "{id}: {check}");
        assert_eq!(result["packed_same"], true, "{id}: {check}");
        if !dims.is_empty() {
            assert_eq!(result["packed_as_bytes"], true, "{id}: {check}");
        }
    }
    assert_eq!(check["get"]["no-such-title"]["found"], false, "{check}");

    // GetSchema: the modality named the one text vector, with its model and dimension.
    assert_eq!(check["vector"], text_vector.as_str(), "{check}");
    let dim = stored_dims[&with_vector][&text_vector];
    let model = text_vector.trim_start_matches("text/");
    assert_eq!(
        check["schema"],
        serde_json::json!([[text_vector, "text", model, dim, "dense"]]),
        "{check}"
    );

    // Search by a stored title: hits, not the title itself, each a title with that vector.
    let hits: Vec<String> = serde_json::from_value(check["search"].clone())?;
    assert!(!hits.is_empty() && hits.len() <= 5, "{hits:?}");
    assert!(
        !hits.contains(&with_vector),
        "the query title is a hit: {hits:?}"
    );
    assert!(
        hits.iter().all(|id| with_synopsis.contains(id.as_str())),
        "{hits:?}"
    );
    assert_eq!(
        hits.iter().collect::<HashSet<_>>().len(),
        hits.len(),
        "{hits:?}"
    );

    // The paged scan: every title once, over several pages of 4.
    assert_eq!(check["scan_count"], titles.len(), "{check}");
    assert_eq!(check["scan_distinct"], titles.len(), "{check}");
    let pages = check["scan_pages"].as_u64().ok_or("no scan_pages")?;
    assert!(pages >= titles.len().div_ceil(4) as u64, "{check}");

    // The change feed: every title once, created, in increasing seq order.
    let changes: Vec<(u64, String, Vec<String>)> =
        serde_json::from_value(check["changes"].clone())?;
    assert_eq!(changes.len(), titles.len(), "{check}");
    assert!(changes.windows(2).all(|w| w[0].0 < w[1].0), "{check}");
    assert!(changes.iter().all(|c| c.2 == ["created"]), "{check}");
    assert_eq!(
        changes
            .iter()
            .map(|c| c.1.as_str())
            .collect::<HashSet<_>>()
            .len(),
        titles.len()
    );

    // The same call without the token is refused.
    assert_eq!(check["unauthenticated"], true, "{check}");

    // Errors come out as `error: CODE: details` with a failing exit status.
    for (args, code) in [
        (
            vec!["--token", "wrong", "get", with_vector.as_str()],
            "UNAUTHENTICATED",
        ),
        (
            vec![
                "--token",
                token.as_str(),
                "search",
                "--vector",
                text_vector.as_str(),
                "--entity",
                "no-such-title",
            ],
            "NOT_FOUND",
        ),
    ] {
        let out = ranker(&python, &server.addr, &args).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {code}: ")),
            "{args:?}: {stderr}"
        );
    }

    drop(server);
    Ok(())
}
