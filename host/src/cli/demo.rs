//! `tessera demo`: the whole path on the example catalog — plugin, model, store, gRPC.

use super::SandboxArgs;
use super::ingest::{finish, print_progress, setup};
use super::serve::serve_store;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera::catalog;
use tessera::grpc::ServeConfig;
use tessera::text_model::TextSource;
use tessera_indexes::{Entity, EntityStore};
use tessera_models::hub::HubModel;

/// Flags of `tessera demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Catalog to ingest.
    #[arg(long, env = "TESSERA_CATALOG", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.jsonl"))]
    catalog: PathBuf,
    /// Data directory (store and generated models).
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    data: PathBuf,
    /// Text model directory. Default: all-MiniLM-L6-v2 from the HF cache, else a tiny model.
    #[arg(long, env = "TESSERA_TEXT_MODEL")]
    text_model: Option<PathBuf>,
    /// Text model on the Hugging Face hub, pinned: org/name@revision (cache first, then download
    /// unless HF_HUB_OFFLINE is set).
    #[arg(long, env = "TESSERA_TEXT_MODEL_HUB", conflicts_with = "text_model")]
    text_model_hub: Option<HubModel>,
    /// Where to serve gRPC after the summary.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Exit after the summary instead of serving.
    #[arg(long)]
    exit: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let titles = catalog::read_jsonl(&args.catalog)?;
    let setup = setup(
        &args.data,
        &tessera_indexes::StoreLocation::Edge(args.data.join("store")),
        None,
        args.text_model.as_deref(),
        args.text_model_hub.as_ref(),
        &[],
        &args.sandbox,
    )?;
    let model = match &setup.source {
        TextSource::Tiny(d) => format!("tiny random-weight model at {} (NO meaning)", d.display()),
        TextSource::HubCache(d) | TextSource::Dir(d) => d.display().to_string(),
    };
    println!("text model: {model}");
    println!("store: {}", args.data.join("store").display());
    println!(
        "ingesting {} titles from {}",
        titles.len(),
        args.catalog.display()
    );
    let report = setup.pipeline.ingest(&titles, print_progress)?;

    println!("\nsummary");
    let ids: Vec<String> = titles.iter().map(|t| t.id.clone()).collect();
    let names: std::collections::HashMap<&str, &str> = titles
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str()))
        .collect();
    // Neighbours on the text model's vector (`text/<model>@<revision>`).
    let text_vector = setup
        .store
        .schema()
        .named("text")
        .map_err(anyhow::Error::msg)?
        .context("the demo plugins store no text vector")?;
    println!("neighbours on vector {text_vector}");
    for entity in setup.store.get(&ids)?.into_iter().flatten() {
        print_entity(&entity, setup.store.as_ref(), &text_vector, &names)?;
    }
    let code = finish(&report, titles.len());
    if args.exit {
        return Ok(code);
    }
    let config = ServeConfig {
        text_model: setup.text.clone(),
        ..ServeConfig::default()
    };
    serve_store(setup.store, args.listen, config, None)?;
    Ok(code)
}

fn print_entity(
    entity: &Entity,
    store: &dyn EntityStore,
    text_vector: &str,
    names: &std::collections::HashMap<&str, &str>,
) -> anyhow::Result<()> {
    println!("\n{} — {}", entity.id, entity.name);
    let tags: Vec<String> = entity.tags.iter().map(super::tag_label).collect();
    println!(
        "  tags:    {}",
        if tags.is_empty() {
            "none".to_string()
        } else {
            tags.join(", ")
        }
    );
    match entity.vectors.get(text_vector) {
        Some(vector) => {
            let near = store.nearest(text_vector, vector, 3, Some(&entity.id))?;
            let near: Vec<String> = near
                .iter()
                .map(|n| {
                    format!(
                        "{} ({:.3})",
                        names.get(n.id.as_str()).copied().unwrap_or(&n.id),
                        n.score
                    )
                })
                .collect();
            println!("  nearest: {}", near.join("; "));
        }
        None => println!("  nearest: (no text vector)"),
    }
    Ok(())
}
