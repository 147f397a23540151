//! `tessera report --html OUT`: a static, self-contained page for people — each title's poster
//! thumbnail, tags with confidences and nearest titles, and a 2-D map (PCA) of the catalog's
//! vectors coloured by each title's top tag. Posters come from the catalog (the store does not
//! keep asset files) and are embedded as small PNG thumbnails, so the page is one file.

use anyhow::{Context, bail};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera::catalog;
use tessera_indexes::{Entity, Tag, VectorKind};

/// Flags of `tessera report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Write the page here.
    #[arg(long)]
    html: PathBuf,
    /// Data directory.
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    data: PathBuf,
    #[command(flatten)]
    store: super::store_cmd::StoreArg,
    /// The catalog, for poster thumbnails.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// The dense vector to map and to find neighbours on (its name, or a modality such as
    /// `text` when the store holds one vector of it). Default: the store's first.
    #[arg(long)]
    vector: Option<String>,
    /// Most titles shown as cards (the map shows up to 20 000).
    #[arg(long, default_value_t = 500)]
    limit: usize,
}

/// Most points on the map.
const MAP_POINTS: usize = 20_000;
/// Thumbnail width, in pixels.
const THUMB_WIDTH: u32 = 96;
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn tag_label(t: &Tag) -> String {
    match &t.value {
        Some(v) => format!("{}={v}", t.name),
        None => t.name.clone(),
    }
}

/// The title's most confident tag, for colouring.
fn top_tag(e: &Entity) -> String {
    e.tags
        .iter()
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
        .map(tag_label)
        .unwrap_or_else(|| "(no tags)".into())
}

/// A poster as a small PNG data URI; `None` when the file cannot be read as an image.
fn thumbnail(path: &Path) -> Option<String> {
    let image = image::open(path).ok()?;
    let height = (u64::from(image.height()) * u64::from(THUMB_WIDTH)
        / u64::from(image.width().max(1)))
    .max(1);
    let small = image.thumbnail(THUMB_WIDTH, u32::try_from(height).ok()?);
    let mut png = std::io::Cursor::new(Vec::new());
    small.write_to(&mut png, image::ImageFormat::Png).ok()?;
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(png.into_inner());
    Some(format!("data:image/png;base64,{encoded}"))
}

/// The top two principal components of `rows` (each of length `dim`), by power iteration with
/// deflation on the covariance; rows projected onto them.
pub(crate) fn pca_2d(rows: &[&[f32]], dim: usize) -> Vec<(f32, f32)> {
    let n = rows.len();
    if n == 0 || dim == 0 {
        return Vec::new();
    }
    let mut mean = vec![0f64; dim];
    for r in rows {
        for (m, &x) in mean.iter_mut().zip(r.iter()) {
            *m += f64::from(x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    // Covariance times v, without forming the matrix: sum over rows of (x·v) x.
    let cov_times = |v: &[f64], out: &mut Vec<f64>| {
        out.iter_mut().for_each(|o| *o = 0.0);
        for r in rows {
            let dot: f64 = r
                .iter()
                .zip(&mean)
                .zip(v)
                .map(|((&x, m), w)| (f64::from(x) - m) * w)
                .sum();
            for ((o, &x), m) in out.iter_mut().zip(r.iter()).zip(&mean) {
                *o += dot * (f64::from(x) - m);
            }
        }
    };
    let mut components: Vec<Vec<f64>> = Vec::new();
    for c in 0..2 {
        // A fixed, non-degenerate start: runs are reproducible.
        let mut v: Vec<f64> = (0..dim)
            .map(|i| 1.0 + ((i * 7 + c * 13) % 11) as f64 * 0.1)
            .collect();
        let mut next = vec![0f64; dim];
        for _ in 0..100 {
            cov_times(&v, &mut next);
            for prev in &components {
                let d: f64 = next.iter().zip(prev).map(|(a, b)| a * b).sum();
                next.iter_mut().zip(prev).for_each(|(a, b)| *a -= d * b);
            }
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-12 {
                // No variance left in this direction (e.g. all points on a line): a zero
                // component, not the unnormalised start vector.
                v.iter_mut().for_each(|x| *x = 0.0);
                break;
            }
            next.iter_mut().for_each(|x| *x /= norm);
            std::mem::swap(&mut v, &mut next);
        }
        components.push(v);
    }
    rows.iter()
        .map(|r| {
            let project = |c: &[f64]| -> f32 {
                r.iter()
                    .zip(&mean)
                    .zip(c)
                    .map(|((&x, m), w)| (f64::from(x) - m) * w)
                    .sum::<f64>() as f32
            };
            (project(&components[0]), project(&components[1]))
        })
        .collect()
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let store = args.store.open_existing(&args.data)?;
    let vector = match &args.vector {
        Some(v) => store
            .schema()
            .named(v)
            .map_err(|e| anyhow::anyhow!("--vector {e}"))?
            .unwrap_or_else(|| v.clone()),
        None => store
            .schema()
            .vectors
            .iter()
            .find(|(_, s)| s.kind == VectorKind::Dense)
            .map(|(n, _)| n.clone())
            .context("the store holds no dense vector to map")?,
    };
    if store.schema().vectors.get(&vector).map(|s| s.kind) != Some(VectorKind::Dense) {
        bail!("--vector {vector:?}: not a dense vector of this store");
    }
    let posters: HashMap<String, PathBuf> = match &args.catalog {
        Some(path) => catalog::load(path)?
            .titles
            .into_iter()
            .filter_map(|t| {
                let poster = t.assets.into_iter().find(|a| a.kind == "poster")?;
                Some((t.id, poster.path))
            })
            .collect(),
        None => HashMap::new(),
    };
    // Titles, page by page, up to the map's size.
    let mut entities: Vec<Entity> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(cursor.as_deref(), 1024, true)?;
        entities.extend(page.entities);
        match page.next {
            Some(next) if entities.len() < MAP_POINTS => cursor = Some(next),
            _ => break,
        }
    }
    entities.truncate(MAP_POINTS);
    let names: HashMap<String, String> = entities
        .iter()
        .map(|e| (e.id.clone(), e.name.clone()))
        .collect();
    let mapped: Vec<&Entity> = entities
        .iter()
        .filter(|e| e.vectors.contains_key(&vector))
        .collect();
    let rows: Vec<&[f32]> = mapped
        .iter()
        .map(|e| e.vectors[&vector].as_slice())
        .collect();
    let dim = rows.first().map_or(0, |r| r.len());
    let points = pca_2d(&rows, dim);
    // Colours: the most common top tags get their own, the rest share the last.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in &mapped {
        *counts.entry(top_tag(e)).or_default() += 1;
    }
    let mut by_count: Vec<(String, usize)> = counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let colour: HashMap<String, &str> = by_count
        .iter()
        .enumerate()
        .map(|(i, (tag, _))| (tag.clone(), PALETTE[i.min(PALETTE.len() - 1)]))
        .collect();

    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera report</title>\n<style>\nbody{{font-family:system-ui,sans-serif;margin:24px;color:#222}}\n.cards{{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}}\n.card{{border:1px solid #ddd;border-radius:8px;padding:10px;display:flex;gap:10px}}\n.card img,.noposter{{width:{THUMB_WIDTH}px;flex:none;border-radius:4px}}\n.noposter{{height:{}px;background:#eee}}\n.tag{{display:inline-block;background:#f1f1f1;border-radius:10px;padding:1px 7px;margin:2px;font-size:12px}}\n.near{{font-size:12px;color:#555}}\nsvg{{border:1px solid #ddd;border-radius:8px}}\n</style></head><body>\n<h1>Tessera report</h1>\n<p>{} titles; map: PCA of vector <code>{}</code>, coloured by each title's most confident tag.</p>\n",
        THUMB_WIDTH * 3 / 2,
        entities.len(),
        escape(&vector)
    );
    // The map.
    let (w, h, pad) = (900.0f32, 560.0f32, 30.0f32);
    let (min_x, max_x) = points
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (min_y, max_y) = points
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let scale = |v: f32, lo: f32, hi: f32, size: f32| {
        if hi > lo {
            pad + (v - lo) / (hi - lo) * (size - 2.0 * pad)
        } else {
            size / 2.0
        }
    };
    let _ = writeln!(
        html,
        "<svg id=\"map\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
    );
    for (e, p) in mapped.iter().zip(&points) {
        let tag = top_tag(e);
        let _ = writeln!(
            html,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"><title>{} — {}</title></circle>",
            scale(p.0, min_x, max_x, w),
            h - scale(p.1, min_y, max_y, h),
            colour.get(&tag).copied().unwrap_or("#999"),
            escape(&e.name),
            escape(&tag)
        );
    }
    html.push_str("</svg>\n<p class=\"legend\">");
    for (tag, count) in by_count.iter().take(PALETTE.len()) {
        let _ = write!(
            html,
            "<span class=\"tag\" style=\"background:{}33\"><b style=\"color:{}\">●</b> {} ({count})</span>",
            colour[tag],
            colour[tag],
            escape(tag)
        );
    }
    html.push_str("</p>\n<div class=\"cards\">\n");
    for e in entities.iter().take(args.limit) {
        let picture = posters
            .get(&e.id)
            .and_then(|p| thumbnail(p))
            .map(|uri| format!("<img alt=\"poster\" src=\"{uri}\">"))
            .unwrap_or_else(|| "<div class=\"noposter\"></div>".into());
        let tags: String = e
            .tags
            .iter()
            .map(|t| {
                format!(
                    "<span class=\"tag\">{} {:.2}</span>",
                    escape(&tag_label(t)),
                    t.confidence
                )
            })
            .collect();
        let near = match e.vectors.get(&vector) {
            Some(v) => store
                .nearest(&vector, v, 3, Some(&e.id))?
                .into_iter()
                .map(|n| {
                    format!(
                        "{} ({:.2})",
                        escape(names.get(&n.id).unwrap_or(&n.id)),
                        n.score
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            None => "—".into(),
        };
        let _ = writeln!(
            html,
            "<div class=\"card\" data-id=\"{}\">{picture}<div><b>{}</b> <small>{}</small><br>{tags}<div class=\"near\">nearest: {near}</div></div></div>",
            escape(&e.id),
            escape(&e.name),
            e.year.map(|y| y.to_string()).unwrap_or_default()
        );
    }
    html.push_str("</div>\n</body></html>\n");
    if let Some(dir) = args.html.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.html, html).with_context(|| format!("writing {}", args.html.display()))?;
    println!(
        "report: {} ({} titles, {} on the map)",
        args.html.display(),
        entities.len().min(args.limit),
        mapped.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_direction_of_most_variance() {
        // Points along (1, 1, 0) with a little spread along (0, 0, 1).
        let data: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                let t = i as f32 - 25.0;
                vec![t, t, (i % 3) as f32 * 0.1]
            })
            .collect();
        let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let points = pca_2d(&rows, 3);
        // The first coordinate orders points as t does (up to sign), the second is small.
        let first: Vec<f32> = points.iter().map(|p| p.0).collect();
        let increasing = first.windows(2).all(|w| w[0] < w[1]);
        let decreasing = first.windows(2).all(|w| w[0] > w[1]);
        assert!(increasing || decreasing, "{first:?}");
        assert!(points.iter().all(|p| p.1.abs() < 1.0), "{points:?}");
    }
}
