//! What an ingest run leaves besides vectors: tags that follow the taxonomy and people's
//! decisions that outlive machine runs, and the run's metrics for a Prometheus collector.

use super::*;

#[test]
fn tags_follow_the_taxonomy_and_peoples_decisions_outlive_machine_runs() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let catalog = example_copy(tmp.path())?;
    let run1 = ingested_run(&ingest(&catalog, &data, &model, &[]))?;
    let shown = tessera_ok(&["tags", "show", "tt-0001"], &data);
    assert!(
        shown.contains("synopsis-length=") && shown.contains("language=en"),
        "{shown}"
    );

    // A taxonomy renames synopsis-length to length and wants language=en at 0.99 or more.
    let taxonomy = tmp.path().join("taxonomy.toml");
    std::fs::write(
        &taxonomy,
        "[tags.length]\naliases = [\"synopsis-length\"]\n[tags.\"language=en\"]\nthreshold = 0.99\n",
    )?;
    let tax = taxonomy.to_string_lossy().into_owned();
    let run2 = ingested_run(&ingest(
        &catalog,
        &data,
        &model,
        &["--force", "--taxonomy", &tax],
    ))?;
    let shown = tessera_ok(&["tags", "show", "tt-0001"], &data);
    assert!(
        shown.contains("length=") && !shown.contains("synopsis-length"),
        "{shown}"
    );
    assert!(!shown.contains("language=en"), "{shown}");

    // The diff of the two runs says exactly that, title by title.
    let diff = tessera_ok(&["tags", "diff", &run1, &run2], &data);
    let line = diff
        .lines()
        .find(|l| l.starts_with("tt-0001: "))
        .ok_or("tt-0001 not in the diff")?;
    assert!(line.contains("+ length="), "{line}");
    assert!(line.contains("- synopsis-length="), "{line}");
    assert!(line.contains("- language=en"), "{line}");

    // People's decisions, with provenance.
    tessera_ok(
        &[
            "tags",
            "set",
            "tt-0001",
            "mood=dark",
            "--reason",
            "editorial review",
            "--by",
            "ana",
        ],
        &data,
    );
    tessera_ok(
        &[
            "tags",
            "unset",
            "tt-0001",
            "script",
            "--reason",
            "not useful here",
            "--by",
            "ana",
        ],
        &data,
    );
    let check = |shown: &str| {
        assert!(
            shown.contains("mood=dark") && shown.contains("set by ana — editorial review"),
            "{shown}"
        );
        assert!(!shown.contains("  script="), "{shown}");
        assert!(shown.contains("decision: unset script by ana"), "{shown}");
    };
    check(&tessera_ok(&["tags", "show", "tt-0001"], &data));
    // A decision about an alias is recorded as the taxonomy's tag, which machine runs produce.
    let aliased = tessera_ok(
        &[
            "tags",
            "set",
            "tt-0001",
            "synopsis-length=epic",
            "--reason",
            "house style",
            "--taxonomy",
            &tax,
        ],
        &data,
    );
    assert!(aliased.contains("recorded as length=epic"), "{aliased}");
    let shown = tessera_ok(&["tags", "show", "tt-0001"], &data);
    assert!(
        shown.contains("length=epic") && !shown.contains("synopsis-length=epic"),
        "{shown}"
    );
    // A later machine run (forced, so every title is redone) keeps them.
    let run3 = ingested_run(&ingest(
        &catalog,
        &data,
        &model,
        &["--force", "--taxonomy", &tax],
    ))?;
    check(&tessera_ok(&["tags", "show", "tt-0001"], &data));
    let diff = tessera_ok(&["tags", "diff", &run2, &run3], &data);
    let line = diff
        .lines()
        .find(|l| l.starts_with("tt-0001: "))
        .ok_or("tt-0001 not in the diff")?;
    assert!(
        line.contains("+ mood=dark") && line.contains("- script="),
        "{line}"
    );
    assert_eq!(diff.lines().count(), 1, "only tt-0001 changed: {diff}");

    // A run that redoes nothing logs no title, and comparing with it reports no change
    // (skipped titles did not lose their tags).
    let run4 = ingested_run(&ingest(&catalog, &data, &model, &["--taxonomy", &tax]))?;
    let diff = tessera_ok(&["tags", "diff", &run3, &run4], &data);
    assert!(diff.is_empty(), "{diff}");
    // Editing the taxonomy makes the next run redo every title, without --force.
    std::fs::write(
        &taxonomy,
        "[tags.length]\naliases = [\"synopsis-length\"]\n[tags.\"language=en\"]\nthreshold = 0.5\n",
    )?;
    let n = tessera::catalog::read_jsonl(&catalog)?.len();
    let redo = ingest(&catalog, &data, &model, &["--taxonomy", &tax]);
    assert!(
        redo.contains(&format!("{n} of {n} titles stored")),
        "{redo}"
    );
    check(&tessera_ok(&["tags", "show", "tt-0001"], &data));

    // Bad input: an empty reason, an unknown title, a broken taxonomy.
    for (args, needle) in [
        (
            vec!["tags", "set", "tt-0001", "x", "--reason", " "],
            "--reason is empty",
        ),
        (
            vec!["tags", "set", "nope", "x", "--reason", "r"],
            "not in the store",
        ),
    ] {
        let out = tessera().args(&args).arg("--data").arg(&data).output()?;
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}"
        );
    }
    std::fs::write(&taxonomy, "[tags.a]\nparent = \"b\"\n")?;
    let out = ingest_command(&catalog, &data, &model)
        .args(["--taxonomy", &tax])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("parent \"b\" is not in the taxonomy"));
    Ok(())
}

#[test]
fn a_run_writes_its_metrics_for_a_prometheus_collector() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let catalog = example_copy(tmp.path())?;
    let n = tessera::catalog::read_jsonl(&catalog)?.len();
    let file = tmp.path().join("textfile/tessera.prom");
    let out = ingest(
        &catalog,
        &data,
        &model,
        &["--metrics-file", &file.display().to_string()],
    );
    let run = ingested_run(&out)?;
    let text = std::fs::read_to_string(&file)?;
    // Every sample line is `name{labels} number`; every metric has HELP and TYPE.
    let mut samples: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (key, value) = line.rsplit_once(' ').ok_or(line.to_string())?;
        samples.insert(key.to_string(), value.parse()?);
        let name = key.split('{').next().unwrap_or_default();
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            text.contains(&format!("# TYPE {base} ")) || text.contains(&format!("# TYPE {name} ")),
            "{name} has no TYPE line"
        );
    }
    let get = |key: &str| {
        samples
            .get(key)
            .copied()
            .ok_or(format!("no {key} in\n{text}"))
    };
    assert_eq!(
        get(&format!("tessera_ingest_titles_done{{run=\"{run}\"}}"))?,
        n as f64
    );
    assert_eq!(
        get(&format!("tessera_ingest_titles_failed{{run=\"{run}\"}}"))?,
        0.0
    );
    // The plugin's labels, its version as the plugin reports it.
    let plugin = text
        .lines()
        .find_map(|l| l.strip_prefix("tessera_plugin_calls_total{"))
        .and_then(|l| l.split_once('}'))
        .map(|(labels, _)| labels.to_string())
        .ok_or("no plugin calls")?;
    assert!(
        plugin.starts_with("plugin=\"synopsis-embedder\",version=\""),
        "{plugin}"
    );
    let calls = get(&format!("tessera_plugin_calls_total{{{plugin}}}"))?;
    // One call per title, and the `describe` call at load.
    assert_eq!(calls, (n + 1) as f64);
    assert_eq!(
        get(&format!("tessera_plugin_call_seconds_count{{{plugin}}}"))?,
        calls
    );
    assert_eq!(
        get(&format!(
            "tessera_plugin_call_seconds_bucket{{{plugin},le=\"+Inf\"}}"
        ))?,
        calls
    );
    assert!(get(&format!("tessera_plugin_model_calls_total{{{plugin}}}"))? > 0.0);
    assert!(get(&format!("tessera_plugin_fuel_total{{{plugin}}}"))? >= 0.0);
    // 14 bounds and +Inf.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(k, _)| {
            k.starts_with(&format!(
                "tessera_plugin_instantiate_seconds_bucket{{{plugin}"
            ))
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 15);
    assert!(!file.with_extension("prom.tmp").exists());
    Ok(())
}
