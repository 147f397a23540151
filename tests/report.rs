//! `tessera report --html`: the page holds every title's card (poster thumbnail, tags, nearest
//! titles) and the PCA map, and renders in headless Chromium (Debian's `chromium`; `.ci/run`
//! installs it). The screenshot is kept as a test artifact in the target directory
//! (`tessera-report.png` under cargo's test temp dir).

mod common;

use common::*;
use std::path::Path;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| std::path::Path::new("/usr/bin").join(name))
        .find(|p| p.is_file())
}

#[test]
fn the_report_shows_every_title_and_renders_in_chromium() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (data, _model) = ingest_example(tmp.path());
    let titles = tessera::catalog::read_jsonl(&example_catalog())?;
    let with_synopsis = titles
        .iter()
        .filter(|t| !t.synopsis.trim().is_empty())
        .count();
    let with_poster = titles
        .iter()
        .filter(|t| t.assets.iter().any(|a| a.kind == "poster"))
        .count();
    let html = tmp.path().join("report/index.html");
    let out = run_ok(
        tessera()
            .args(["report", "--html"])
            .arg(&html)
            .arg("--data")
            .arg(&data)
            .arg("--catalog")
            .arg(example_catalog()),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("report: "));
    let page = std::fs::read_to_string(&html)?;
    assert_eq!(page.matches("<div class=\"card\"").count(), titles.len());
    assert_eq!(page.matches("<circle ").count(), with_synopsis);
    assert_eq!(
        page.matches("src=\"data:image/png;base64,").count(),
        with_poster
    );
    assert_eq!(page.matches("nearest: ").count(), titles.len());
    for t in &titles {
        assert!(
            page.contains(&format!("data-id=\"{}\"", t.id)),
            "{} has no card",
            t.id
        );
    }
    assert!(page.contains("class=\"legend\""));

    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must render the report: install Debian's chromium (.ci/run does)"
        );
        println!("skipping the Chromium rendering: no chromium in /usr/bin");
        return Ok(());
    };
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-report.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tmp.path().join("chromium-profile");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    assert!(status.success(), "chromium failed: {status}");
    // The screenshot is a real render: full size, and far from blank (posters, map, text).
    let image = image::open(&shot)?.to_rgb8();
    assert_eq!(image.dimensions(), (1280, 1600));
    let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 500,
        "{} colours: a blank page?",
        colours.len()
    );
    println!("screenshot: {}", shot.display());
    Ok(())
}
