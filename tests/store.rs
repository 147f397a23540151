//! `tessera store` and `--store`: a store migrates between backends and proves the copy whole;
//! with a Qdrant server (`QDRANT_URL`), ingest, tags and semantic IDs work against a server
//! collection as they do against the embedded store.

mod common;

use common::{example_catalog, ingest_command, ingest_example, run_ok, tessera, tiny_model};
use std::io::Write;
use std::path::Path;
use tessera_indexes::{EdgeStore, EntityStore};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The checksum a migrate printed (`checksum sha256:…`).
fn checksum(out: &str) -> String {
    out.split("sha256:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no checksum in {out}"))
        .to_string()
}

fn titles(info: &str) -> usize {
    info.lines()
        .find_map(|l| l.strip_prefix("titles: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no title count in {info}"))
}

fn info(store: &str) -> String {
    stdout(&run_ok(tessera().args(["store", "info", "--store", store])))
}

fn migrate(from: &str, to: &str, extra: &[&str]) -> std::process::Output {
    tessera()
        .args([
            "store", "migrate", "--from", from, "--to", to, "--page", "7",
        ])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tessera: {e}"))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn migrate_copies_a_store_and_proves_the_copy() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (data, _model) = ingest_example(dir.path());
    let from = path(&data.join("store"));
    let to = path(&dir.path().join("copy/store"));
    let out = migrate(&from, &to, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("verified:"), "{text}");
    let sum = checksum(&text);
    let (a, b) = (info(&from), info(&to));
    assert_eq!(titles(&a), titles(&b));
    assert!(titles(&a) > 0);
    // Same vectors in the copy's schema.
    let vectors = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with("vector "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(vectors(&a), vectors(&b));
    // The copy answers like the original.
    let show = |store: &str| {
        stdout(&run_ok(
            tessera().args(["tags", "show", "tt-0001", "--json", "--store", store]),
        ))
    };
    assert_eq!(show(&from), show(&to));
    // Each title keeps the time it was first stored; the copy's writes are its own changes.
    let created = |store: &str| {
        let store = EdgeStore::open_existing(Path::new(store)).unwrap_or_else(|e| panic!("{e}"));
        let page = store
            .scan(None, 1000, true)
            .unwrap_or_else(|e| panic!("{e}"));
        page.entities
            .into_iter()
            .map(|e| (e.id, e.created_at))
            .collect::<Vec<_>>()
    };
    let original = created(&from);
    assert!(original.iter().all(|(_, t)| t.is_some()), "{original:?}");
    assert_eq!(created(&to), original);

    // A second copy into the non-empty store is refused unless asked for; asked, it resumes
    // and verifies to the same checksum.
    let again = migrate(&from, &to, &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("--into-non-empty"),
        "{}",
        stderr(&again)
    );
    let resumed = migrate(&from, &to, &["--into-non-empty"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(checksum(&stdout(&resumed)), sum);

    // Bad requests say what is wrong.
    for (args, why) in [
        (vec![from.as_str(), from.as_str()], "same store"),
        (
            vec!["/nonexistent/store", to.as_str()],
            "no Tessera store here",
        ),
        (
            vec![from.as_str(), "http://h:6334/bad name"],
            "collection name",
        ),
    ] {
        let out = migrate(args[0], args[1], &[]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
}

/// A fresh collection URL on the server `QDRANT_URL` names, or `None` after a skip line.
fn server_collection(test: &str) -> Option<String> {
    let Some(url) = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty()) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP server backend ({test}): QDRANT_URL is not set; set it to a Qdrant gRPC URL such as http://127.0.0.1:6334 to run this test against a server"
        );
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Some(format!(
        "{}/tessera_e2e_{}_{nanos}",
        url.trim_end_matches('/'),
        std::process::id()
    ))
}

/// What a server test works in: its own collection (deleted afterwards), a temp dir and a tiny
/// model there.
struct ServerFixture {
    collection: Collection,
    dir: tempfile::TempDir,
    model: std::path::PathBuf,
}

/// A [`ServerFixture`], or `None` after a skip line when `QDRANT_URL` is not set.
fn server_fixture(test: &str) -> Option<ServerFixture> {
    let collection = Collection(server_collection(test)?);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let model = tiny_model(dir.path());
    Some(ServerFixture {
        collection,
        dir,
        model,
    })
}

/// The shards of the multi-worker tests, one worker each.
const SHARDS: [&str; 3] = ["0/3", "1/3", "2/3"];

/// Worker `shard`'s data directory.
fn worker_dir(dir: &tempfile::TempDir, shard: &str) -> std::path::PathBuf {
    dir.path()
        .join(format!("worker-{}", shard.replace('/', "of")))
}

/// Runs three ingest workers on shards 0/3..2/3 of `catalog` at the same time, each with its
/// own data directory (prepared by `prepare`, as on its own machine), all writing
/// `collection`; waits for all to succeed and opens the collection.
fn shard_workers(
    collection: &Collection,
    dir: &tempfile::TempDir,
    model: &Path,
    catalog: &Path,
    prepare: impl Fn(&Path),
) -> std::sync::Arc<dyn tessera_indexes::EntityStore> {
    let children: Vec<_> = SHARDS
        .iter()
        .map(|shard| {
            let data = worker_dir(dir, shard);
            std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
            prepare(&data);
            ingest_command(catalog, &data, model)
                .args(["--shard", shard, "--store", &collection.0])
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    match tessera_indexes::StoreLocation::parse(&collection.0) {
        Ok(location) => location.open_existing().unwrap_or_else(|e| panic!("{e}")),
        Err(e) => panic!("{e}"),
    }
}

/// Deletes a test collection when dropped.
struct Collection(String);

impl Drop for Collection {
    fn drop(&mut self) {
        if let Ok(tessera_indexes::StoreLocation::Server(mut config)) =
            tessera_indexes::StoreLocation::parse(&self.0)
        {
            config.api_key = std::env::var("QDRANT_API_KEY").ok();
            if let Ok(store) = tessera_indexes::ServerStore::open_existing(config) {
                let _ = store.destroy();
            }
        }
    }
}

#[test]
fn a_server_collection_works_like_the_embedded_store() {
    let Some(ServerFixture {
        collection,
        dir,
        model,
    }) = server_fixture("a_server_collection_works_like_the_embedded_store")
    else {
        return;
    };
    let data = dir.path().join("data");
    // Ingest straight into the server collection.
    let out =
        run_ok(ingest_command(&example_catalog(), &data, &model).args(["--store", &collection.0]));
    assert!(stdout(&out).contains("stored"), "{}", stdout(&out));
    assert!(
        !data.join("store").exists(),
        "nothing goes to the embedded store"
    );
    let on_server = info(&collection.0);
    let n = titles(&on_server);
    assert!(n > 0, "{on_server}");
    // An unchanged re-run skips every title.
    let again =
        run_ok(ingest_command(&example_catalog(), &data, &model).args(["--store", &collection.0]));
    let again = stdout(&again);
    assert!(
        again.contains(&format!("{n} of {n} titles skipped"))
            && again.contains("0 of 0 titles stored"),
        "{again}"
    );
    // Tags governance against the server.
    run_ok(tessera().args([
        "tags",
        "set",
        "tt-0001",
        "genre=noir",
        "--reason",
        "editor",
        "--by",
        "ana",
        "--store",
        &collection.0,
    ]));
    let shown = stdout(&run_ok(tessera().args([
        "tags",
        "show",
        "tt-0001",
        "--store",
        &collection.0,
    ])));
    assert!(shown.contains("genre=noir"), "{shown}");
    // Served over gRPC from the server collection: the title reads back with its tags, and a
    // search by its own vector finds it first.
    let server = common::serve_with(&data, &["--store", collection.0.as_str()]);
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        use tessera::grpc::proto::{
            GetEntitiesRequest, GetSchemaRequest, SearchRequest, entities_client::EntitiesClient,
            search_request::Query,
        };
        let mut client = EntitiesClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let schema = client
            .get_schema(GetSchemaRequest {})
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        let text = schema
            .vectors
            .iter()
            .find(|v| v.modality == "text")
            .map(|v| v.name.clone())
            .unwrap_or_else(|| panic!("no text vector in {schema:?}"));
        let got = client
            .get_entities(GetEntitiesRequest {
                ids: vec!["tt-0001".into()],
                vector_names: vec![text.clone()],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        let entity = got.results[0]
            .entity
            .clone()
            .unwrap_or_else(|| panic!("tt-0001 is served"));
        assert!(
            entity
                .tags
                .iter()
                .any(|t| t.name == "genre" && t.value.as_deref() == Some("noir"))
        );
        let vector = entity.vectors[&text].clone();
        let hits = client
            .search(SearchRequest {
                vector_name: text.clone(),
                limit: 3,
                query: Some(Query::Vector(vector)),
                ..SearchRequest::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner()
            .hits;
        assert_eq!(hits[0].id, "tt-0001");
    });
    drop(server);
    // Semantic IDs trained over the server's vectors and written back to it (the migration
    // below carries them: they are part of every title's checksum).
    run_ok(tessera().args([
        "sid",
        "train",
        "--data",
        &path(&data),
        "--store",
        &collection.0,
        "--levels",
        "2",
        "--codes",
        "4",
    ]));
    // Back to an embedded store and verified against the server copy.
    let local = path(&dir.path().join("local/store"));
    let out = migrate(&collection.0, &local, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("verified: {n} titles")),
        "{}",
        stdout(&out)
    );
    let shown_local = stdout(&run_ok(
        tessera().args(["tags", "show", "tt-0001", "--store", &local]),
    ));
    assert_eq!(shown, shown_local);
}

/// `n` titles written to DIR/PREFIX.jsonl with ids `PREFIX-0000`…: the example catalog's first
/// `distinct` titles over and over, without assets.
fn repeated_catalog(dir: &Path, n: usize, distinct: usize, prefix: &str) -> std::path::PathBuf {
    let lines: Vec<String> = std::fs::read_to_string(example_catalog())
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(distinct)
        .map(str::to_string)
        .collect();
    let mut out = String::new();
    for i in 0..n {
        let mut title: serde_json::Value =
            serde_json::from_str(&lines[i % lines.len()]).unwrap_or_else(|e| panic!("{e}"));
        title["id"] = serde_json::Value::String(format!("{prefix}-{i:04}"));
        if let Some(map) = title.as_object_mut() {
            map.remove("assets");
        }
        out.push_str(&title.to_string());
        out.push('\n');
    }
    let path = dir.join(format!("{prefix}.jsonl"));
    std::fs::write(&path, out).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn shard_workers_share_one_server_collection() {
    let Some(ServerFixture {
        collection,
        dir,
        model,
    }) = server_fixture("shard_workers_share_one_server_collection")
    else {
        return;
    };
    let catalog = repeated_catalog(dir.path(), 240, usize::MAX, "rep");
    // One worker per shard, at the same time, each with its own data directory (as on separate
    // machines), all writing the one collection.
    let store = shard_workers(&collection, &dir, &model, &catalog, |_| {});
    // Every title once: the count, and the change feed lists each title once, created.
    assert_eq!(store.count().unwrap_or_else(|e| panic!("{e}")), 240);
    let changes = store.changes(0, 1000).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changes.len(), 240);
    assert!(changes.iter().all(|c| c.what == ["created"]));
    // Numbers from different workers may tie (the same microsecond); how a page ends at a tie
    // is unit-tested beside `trim_tie`, as a tie here depends on timing.
    let ids: std::collections::HashSet<_> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 240);
    // Read in small pages, resuming after the last number seen, the feed still lists every
    // title once: a page never ends inside a tie.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.changes(after, 7).unwrap_or_else(|e| panic!("{e}"));
        match page.last() {
            Some(last) => after = last.seq,
            None => break,
        }
        paged.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(paged.len(), 240);
    assert_eq!(
        paged.iter().collect::<std::collections::HashSet<_>>().len(),
        240
    );
    // The three runs wrote disjoint shares.
    let runs: std::collections::HashSet<_> = changes.iter().filter_map(|c| c.run.clone()).collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    // Run again, every worker finds its share done.
    for shard in SHARDS {
        let data = worker_dir(&dir, shard);
        let out = run_ok(ingest_command(&catalog, &data, &model).args([
            "--shard",
            shard,
            "--store",
            &collection.0,
        ]));
        assert!(
            stdout(&out).contains("0 of 0 titles stored"),
            "{}",
            stdout(&out)
        );
    }
    assert_eq!(
        store
            .changes(0, 1000)
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        240
    );
}

#[test]
fn ingest_fuses_vectors_by_the_recipe_it_records() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let model = tiny_model(dir.path());
    // A second text model for the synopsis embedder (its `model` config key), so the two
    // plugins' vectors come from two models and are stored as two vectors.
    let alt = dir.path().join("alt-model");
    tessera_models::tiny::write_tiny_bert(
        &alt,
        &tessera_models::tiny::TinyBertSpec {
            seed: 5,
            hidden: 24,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let identity = |name: &str, dir: &Path| {
        tessera_models::identity::identity(name, dir).unwrap_or_else(|e| panic!("{e}"))
    };
    let (text, alt_text) = (
        format!("text/{}", identity("tiny-model", &model)),
        format!("text/{}", identity("alt-model", &alt)),
    );
    let data = dir.path().join("data");
    let embedder = dir.path().join("synopsis-embedder.wasm");
    std::fs::write(
        &embedder,
        tessera_plugin_artifacts::component("synopsis-embedder").unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let legacy = dir.path().join("legacy-v0.wasm");
    std::fs::write(
        &legacy,
        tessera_plugin_artifacts::component("legacy-v0").unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Both on the one text model: a title would hold two vectors of one space under one name,
    // so the set is refused with both outputs named, before anything is stored.
    let out = ingest_command(&example_catalog(), &data, &model)
        .arg("--plugin")
        .arg(format!("{},{}", path(&embedder), path(&legacy)))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "synopsis-embedder's \"synopsis\" and legacy-v0's \"legacy-synopsis\" would both be stored as vector \"{text}\""
        )),
        "{}",
        stderr(&out)
    );
    assert!(!data.join("store").exists());
    let manifest = stdout(&run_ok(
        tessera()
            .args(["plugin", "manifest", "--models", "alt"])
            .arg(&embedder),
    ));
    let embedder_toml = dir.path().join("synopsis-embedder.toml");
    std::fs::write(&embedder_toml, manifest + "model = \"alt\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let plugins = format!("{},{}", path(&embedder_toml), path(&legacy));
    let ingest = |extra: &[&str]| {
        ingest_command(&example_catalog(), &data, &model)
            .arg("--model")
            .arg(format!("alt={}", path(&alt)))
            .arg("--plugin")
            .arg(&plugins)
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // Bad recipes are refused before anything is stored; `text` alone names two vectors here.
    let both = format!("{alt_text}, {text}");
    for (recipe, why) in [
        (text.clone(), "two or more"),
        (format!("{text}=1,poster=1"), "no vector \"poster\""),
        (format!("{text}=1,{alt_text}=-2"), "above 0"),
        ("text=1,image=1".to_string(), both.as_str()),
    ] {
        let out = ingest(&["--fuse", &recipe]);
        assert_eq!(out.status.code(), Some(2), "{recipe}");
        assert!(stderr(&out).contains(why), "{recipe}: {}", stderr(&out));
        assert!(!data.join("store").exists());
    }
    let recipe = format!("{alt_text}=2,{text}=1");
    let out = ingest(&["--fuse", &recipe]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = path(&data.join("store"));
    let shown = info(&store);
    let dims = |name: &str| -> usize {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("vector {name}:")))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|d| d.split_whitespace().next())
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {shown}"))
    };
    assert_eq!(dims(&alt_text), 24);
    assert_eq!(dims("fused"), dims(&alt_text) + dims(&text));
    assert!(shown.contains(&format!("fusion of {recipe}")), "{shown}");
    // A later run must name the same recipe: the store says which.
    let out = ingest(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("--fuse {recipe}")),
        "{}",
        stderr(&out)
    );
    let out = ingest(&["--fuse", &recipe]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (data, _model) = ingest_example(dir.path());
    // A pipe whose reader is gone before the command prints (`tessera … | head` once head
    // exits): the first line already fails.
    let (reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("{e}"));
    drop(reader);
    let out = tessera()
        .args(["store", "info", "--data", &path(&data)])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(141));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn workers_on_one_server_never_share_a_semantic_id() {
    let Some(ServerFixture {
        collection,
        dir,
        model,
    }) = server_fixture("workers_on_one_server_never_share_a_semantic_id")
    else {
        return;
    };
    // The example catalog and a codebook trained on it.
    let first = dir.path().join("first");
    run_ok(ingest_command(&example_catalog(), &first, &model).args(["--store", &collection.0]));
    run_ok(tessera().args([
        "sid",
        "train",
        "--data",
        &path(&first),
        "--store",
        &collection.0,
        "--levels",
        "2",
        "--codes",
        "4",
    ]));
    // Ninety copies of one title: one vector, so one group of level codes, whose
    // disambiguation codes three workers hand out at the same time.
    let catalog = repeated_catalog(dir.path(), 90, 1, "copy");
    // Each worker has the codebook in its own data directory, as on its own machine.
    let store = shard_workers(&collection, &dir, &model, &catalog, |data| {
        std::fs::copy(
            first.join("semantic-ids.sid"),
            data.join("semantic-ids.sid"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    });
    let mut ids = std::collections::HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .scan(cursor.as_deref(), 64, false)
            .unwrap_or_else(|e| panic!("{e}"));
        for entity in page.entities {
            // Titles without a synopsis have no vector, so no semantic ID; every copy has one.
            let Some(sid) = entity.semantic_id else {
                assert!(
                    !entity.id.starts_with("copy-"),
                    "{} has no semantic ID",
                    entity.id
                );
                continue;
            };
            if let Some(other) = ids.insert(sid.id.to_string(), entity.id.clone()) {
                panic!("{} and {other} share the semantic ID {}", entity.id, sid.id);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(ids.values().filter(|t| t.starts_with("copy-")).count(), 90);
}
