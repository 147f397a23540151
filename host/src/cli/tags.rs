//! `tessera tags`: people's control over tags — set or unset a title's tag with a reason (kept
//! through every later machine run), show a title's tags with provenance, and diff two runs'
//! tags before a new plugin or model version is promoted.

use super::ingest_report::JsonLines;
use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera::taxonomy as crate_taxonomy;
use tessera_indexes::{Entity, EntityStore, Tag, TagOverride};

/// Tag governance commands.
#[derive(Debug, clap::Subcommand)]
pub enum TagsCommand {
    /// Give a title a tag (NAME or NAME=VALUE), whatever plugins say, now and in later runs.
    Set(Decision),
    /// Take a tag (NAME: any value; NAME=VALUE: that value) from a title, now and in later runs.
    Unset(Decision),
    /// A title's tags with provenance (plugin, version, run, confidence, evidence) and the
    /// decisions people made about them.
    Show {
        /// Title id.
        title: String,
        /// Data directory.
        #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
        data: PathBuf,
        #[command(flatten)]
        store: super::store_cmd::StoreArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What changed between two runs' tags: tags added, removed, and confidence shifts. A run is
    /// a run id (its log in DATA/runs/) or the path of a run log.
    Diff {
        /// The run to compare from.
        run_a: String,
        /// The run to compare to.
        run_b: String,
        /// Data directory (for run ids).
        #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
        data: PathBuf,
        /// Smallest confidence change reported as a shift.
        #[arg(long, default_value_t = 0.1)]
        min_shift: f32,
        /// Print one JSON object per title that changed.
        #[arg(long)]
        json: bool,
    },
}

/// A person's decision about a tag.
#[derive(Debug, clap::Args)]
pub struct Decision {
    /// Title id.
    title: String,
    /// NAME or NAME=VALUE.
    tag: String,
    /// Why (kept with the decision).
    #[arg(long)]
    reason: String,
    /// Who decides. Default: $USER.
    #[arg(long, env = "TESSERA_USER")]
    by: Option<String>,
    /// Data directory.
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    data: PathBuf,
    #[command(flatten)]
    store: super::store_cmd::StoreArg,
    /// Tag taxonomy, as ingest uses it: an alias is recorded as its canonical tag, so the
    /// decision applies to the tag machine runs produce. Default: DATA/taxonomy.toml when it
    /// exists.
    #[arg(long, env = "TESSERA_TAXONOMY")]
    taxonomy: Option<PathBuf>,
}

fn split_tag(tag: &str) -> anyhow::Result<(String, Option<String>)> {
    let (name, value) = match tag.split_once('=') {
        Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
        None => (tag.trim().to_string(), None),
    };
    if name.is_empty() || value.as_deref().is_some_and(str::is_empty) {
        bail!("tag {tag:?}: give NAME or NAME=VALUE");
    }
    Ok((name, value))
}

fn stored(store: &dyn EntityStore, title: &str) -> anyhow::Result<Entity> {
    store
        .get(&[title.to_string()])?
        .into_iter()
        .next()
        .flatten()
        .with_context(|| format!("title {title:?} is not in the store; ingest it first"))
}

fn decide(decision: Decision, present: bool) -> anyhow::Result<ExitCode> {
    if decision.reason.trim().is_empty() {
        bail!("--reason is empty: say why, it is kept with the decision");
    }
    let (mut name, mut value) = split_tag(&decision.tag)?;
    let taxonomy = decision
        .taxonomy
        .clone()
        .or_else(|| Some(decision.data.join("taxonomy.toml")).filter(|p| p.is_file()));
    if let Some(path) = &taxonomy {
        let taxonomy = crate_taxonomy::Taxonomy::read(path)?;
        if let Some((canonical, canonical_value)) = taxonomy.rename(&name, value.as_deref()) {
            let label = |n: &str, v: Option<&str>| match v {
                Some(v) => format!("{n}={v}"),
                None => n.to_string(),
            };
            println!(
                "{} is an alias in the taxonomy {}: recorded as {}",
                label(&name, value.as_deref()),
                path.display(),
                label(&canonical, canonical_value.as_deref())
            );
            (name, value) = (canonical, canonical_value);
        }
    }
    let store = decision.store.open_existing(&decision.data)?;
    let mut entity = stored(&*store, &decision.title)?;
    let by = decision
        .by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let o = TagOverride {
        name,
        value,
        present,
        reason: decision.reason.trim().to_string(),
        by,
        at,
    };
    // A new decision about the same tag replaces the old one.
    entity
        .overrides
        .retain(|x| !(x.name == o.name && x.value == o.value));
    entity.overrides.push(o.clone());
    TagOverride::apply(std::slice::from_ref(&o), &mut entity.tags);
    store.upsert(std::slice::from_ref(&entity))?;
    store.flush()?;
    println!(
        "{} {}: {} ({} by {})",
        if present { "set" } else { "unset" },
        decision.title,
        decision.tag,
        o.reason,
        o.by
    );
    Ok(ExitCode::SUCCESS)
}

fn tag_label(t: &Tag) -> String {
    match &t.value {
        Some(v) => format!("{}={v}", t.name),
        None => t.name.clone(),
    }
}

fn show(
    title: &str,
    data: &Path,
    store: &super::store_cmd::StoreArg,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = store.open_existing(data)?;
    let entity = stored(&*store, title)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"id": entity.id, "tags": entity.tags, "overrides": entity.overrides})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} — {}", entity.id, entity.name);
    for t in &entity.tags {
        let source = if t.plugin == TagOverride::PLUGIN {
            format!("set by {}", t.plugin_version)
        } else {
            format!(
                "{}@{}, run {}",
                t.plugin,
                t.plugin_version,
                t.run.as_deref().unwrap_or("?")
            )
        };
        let evidence = t
            .evidence
            .as_deref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default();
        println!(
            "  {:<28} {:.2}  {source}{evidence}",
            tag_label(t),
            t.confidence
        );
    }
    for o in &entity.overrides {
        let label = match &o.value {
            Some(v) => format!("{}={v}", o.name),
            None => o.name.clone(),
        };
        println!(
            "  decision: {} {label} by {} at {} — {}",
            if o.present { "set" } else { "unset" },
            o.by,
            o.at,
            o.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One title's tags in a run log: (name, value) → highest confidence.
type RunTags = BTreeMap<String, BTreeMap<(String, Option<String>), f32>>;

/// A run's tag log: `DATA/runs/RUN.tags.jsonl`, or a path.
fn run_log(run: &str, data: &Path) -> PathBuf {
    let path = PathBuf::from(run);
    if path.is_file() {
        path
    } else {
        data.join("runs").join(format!("{run}.tags.jsonl"))
    }
}

fn read_run(path: &Path) -> anyhow::Result<RunTags> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("run log {} (a run id or a path)", path.display()))?;
    let mut out = RunTags::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: RunLogLine = serde_json::from_str(&line)
            .with_context(|| format!("{}, line {}", path.display(), i + 1))?;
        let tags = out.entry(entry.id).or_default();
        for t in entry.tags {
            let c = tags.entry((t.name, t.value)).or_insert(t.confidence);
            *c = c.max(t.confidence);
        }
    }
    Ok(out)
}

/// A line of a run's tag log.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RunLogLine {
    /// Title id.
    pub id: String,
    /// Its tags from that run.
    pub tags: Vec<Tag>,
}

/// Appends each stored title's tags to a run's log, so two runs can be compared later.
pub struct RunLog(JsonLines);

impl RunLog {
    /// Creates DATA/runs/RUN.tags.jsonl.
    pub fn create(data: &Path, run: &str) -> anyhow::Result<Self> {
        JsonLines::create(&data.join("runs").join(format!("{run}.tags.jsonl"))).map(RunLog)
    }

    /// Records one stored title.
    pub fn title(&mut self, entity: &Entity) -> std::io::Result<()> {
        self.0.append(&RunLogLine {
            id: entity.id.clone(),
            tags: entity.tags.clone(),
        })
    }
}

fn label(key: &(String, Option<String>)) -> String {
    match &key.1 {
        Some(v) => format!("{}={v}", key.0),
        None => key.0.clone(),
    }
}

fn diff(a: &str, b: &str, data: &Path, min_shift: f32, json: bool) -> anyhow::Result<ExitCode> {
    let (run_a, run_b) = (read_run(&run_log(a, data))?, read_run(&run_log(b, data))?);
    // A run's log holds the titles it stored: a title missing from one log was skipped or
    // failed there, not stripped of its tags, so only titles in both are compared.
    let titles: BTreeSet<&String> = run_a.keys().filter(|t| run_b.contains_key(*t)).collect();
    let only_a = run_a.len() - titles.len();
    let only_b = run_b.len() - titles.len();
    let empty = BTreeMap::new();
    let (mut added, mut removed, mut shifted, mut changed_titles) = (0, 0, 0, 0);
    for title in &titles {
        let (ta, tb) = (
            run_a.get(*title).unwrap_or(&empty),
            run_b.get(*title).unwrap_or(&empty),
        );
        let plus: Vec<_> = tb.iter().filter(|(k, _)| !ta.contains_key(*k)).collect();
        let minus: Vec<_> = ta.iter().filter(|(k, _)| !tb.contains_key(*k)).collect();
        let moved: Vec<_> = ta
            .iter()
            .filter_map(|(k, ca)| tb.get(k).map(|cb| (k, *ca, *cb)))
            .filter(|(_, ca, cb)| (cb - ca).abs() >= min_shift)
            .collect();
        if plus.is_empty() && minus.is_empty() && moved.is_empty() {
            continue;
        }
        changed_titles += 1;
        added += plus.len();
        removed += minus.len();
        shifted += moved.len();
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "id": title,
                    "added": plus.iter().map(|(k, c)| serde_json::json!({"tag": label(k), "confidence": c})).collect::<Vec<_>>(),
                    "removed": minus.iter().map(|(k, c)| serde_json::json!({"tag": label(k), "confidence": c})).collect::<Vec<_>>(),
                    "shifted": moved.iter().map(|(k, ca, cb)| serde_json::json!({"tag": label(k), "from": ca, "to": cb})).collect::<Vec<_>>(),
                })
            );
        } else {
            let mut parts: Vec<String> = Vec::new();
            parts.extend(plus.iter().map(|(k, c)| format!("+ {} ({c:.2})", label(k))));
            parts.extend(
                minus
                    .iter()
                    .map(|(k, c)| format!("- {} ({c:.2})", label(k))),
            );
            parts.extend(
                moved
                    .iter()
                    .map(|(k, ca, cb)| format!("~ {} {ca:.2}→{cb:.2}", label(k))),
            );
            println!("{title}: {}", parts.join("  "));
        }
    }
    eprintln!(
        "{} titles compared: {changed_titles} changed; {added} tags added, {removed} removed, {shifted} shifted by ≥ {min_shift}; not compared (in one run only): {only_a} in {a}, {only_b} in {b}",
        titles.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run(command: TagsCommand) -> anyhow::Result<ExitCode> {
    match command {
        TagsCommand::Set(d) => decide(d, true),
        TagsCommand::Unset(d) => decide(d, false),
        TagsCommand::Show {
            title,
            data,
            store,
            json,
        } => show(&title, &data, &store, json),
        TagsCommand::Diff {
            run_a,
            run_b,
            data,
            min_shift,
            json,
        } => diff(&run_a, &run_b, &data, min_shift, json),
    }
}
