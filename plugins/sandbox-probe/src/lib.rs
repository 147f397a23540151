//! `sandbox-probe`: a deliberately hostile plugin for the host's sandbox tests.
//!
//! The title's `probe` metadata key picks the misbehaviour, so one component exercises every limit:
//! `loop`, `alloc`, `recurse`, `panic`, `out-of-bounds`, `open-file`, `read-env`, `open-socket`, or
//! `ok` (behave).
//! Capability probes report what the sandbox answered as a plugin error, so the host test can check
//! that access was refused (and why) rather than guess from a missing side effect.
//!
//! Contract probes report what the host's capabilities answered, as tags whose value and evidence
//! the host tests compare: `media` (every asset method), `models` (list-models, and zero-shot of
//! the title's synopsis with the model named in `target`), `image` / `audio` (embed the first
//! image / audio asset with `target`), `config`, `prior` (the tags read from earlier plugins) and
//! `spans` (a time-span tag and, when the config sets `tokens`, a token sequence), `flood`
//! (10 000 tags, over the host's cap).
//! The config key `after` makes the probe read that plugin's tags.

use std::hint::black_box;
use tessera_plugin_sdk::{
    Analysis, Input, MediaKind, Plugin, PluginError, PluginInfo, TimeSpan, Title, budget, config,
    export_plugin, log, models,
};

struct SandboxProbe;

impl Plugin for SandboxProbe {
    fn describe() -> PluginInfo {
        // A version from config lets the host's tests release a "new version" of the probe (a
        // new manifest) without building a second component.
        let version = config::get("version").unwrap_or_else(|| env!("CARGO_PKG_VERSION").into());
        let mut info = PluginInfo::new("sandbox-probe", &version).with_tags(&["probe"]);
        if let Some(after) = config::get("after") {
            info = info.after(&after);
        }
        if let Some(model) = config::get("tokens") {
            info = info.with_token_sequence("probe-tokens", &model);
        }
        info
    }

    fn analyze(title: Title, input: Input) -> Result<Analysis, PluginError> {
        let mode = title.meta("probe").unwrap_or("ok").to_string();
        let target = title.meta("target").unwrap_or("").to_string();
        match mode.as_str() {
            "ok" => Ok(Analysis::new().tag("probe", Some("ok"), 1.0)),
            // What the host says is left of this call's time (contract 1.1).
            "budget" => Ok(Analysis::new().tag(
                "probe",
                Some(&format!("left-ms={}", budget::time_left().as_millis())),
                1.0,
            )),
            // Blocks for `target` milliseconds: a call that is still in flight while the host
            // swaps plugins.
            "sleep" => {
                let ms: u64 = target.parse().map_err(|_| {
                    PluginError::InvalidInput(format!("sleep wants milliseconds, not {target:?}"))
                })?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(Analysis::new().tag("probe", Some("slept"), 1.0))
            }
            "media" => Ok(probe_media(&input)),
            "flood" => Ok((0..10_000).fold(Analysis::new(), |a, i| {
                a.tag("probe", Some(&i.to_string()), 1.0)
            })),
            "models" => {
                let listed: Vec<String> = models::list()
                    .iter()
                    .map(|m| {
                        format!(
                            "{}:{:?}:{}:{}",
                            m.name, m.modality, m.dimension, m.zero_shot
                        )
                    })
                    .collect();
                let mut analysis = Analysis::new().tag("probe", Some(&listed.join(",")), 1.0);
                if !target.is_empty() {
                    let labels = [
                        models::label("space", &["a film set in space", "astronauts in orbit"]),
                        models::label("sea", &["a film set at sea"]),
                    ];
                    let scores = models::zero_shot_text(&target, &title.synopsis, &labels)?;
                    for s in scores {
                        let evidence = format!("cosine {}", s.cosine);
                        analysis = analysis.tag_with(
                            "zero-shot",
                            Some(&s.name),
                            s.score,
                            None,
                            Some(&evidence),
                        );
                    }
                }
                Ok(analysis)
            }
            "image" => {
                let image = input.assets_of(MediaKind::Image).next().ok_or_else(|| {
                    PluginError::InvalidInput("the title has no image asset".into())
                })?;
                let v = models::embed_image(&target, image)?;
                Ok(Analysis::new().tag("probe", Some(&format!("{}-d", v.len())), 1.0))
            }
            "audio" => {
                let audio = input.assets_of(MediaKind::Audio).next().ok_or_else(|| {
                    PluginError::InvalidInput("the title has no audio asset".into())
                })?;
                let e = models::embed_audio(&target, audio, true, None)?;
                let mut analysis =
                    Analysis::new().tag("probe", Some(&format!("{}-d", e.vector.len())), 1.0);
                for w in e.windows {
                    let value = format!("{}-d", w.vector.len());
                    analysis = analysis.tag_with("probe", Some(&value), 1.0, Some(w.span), None);
                }
                Ok(analysis)
            }
            "config" => {
                let all: Vec<String> = config::all()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                log::log(
                    log::Level::Info,
                    "config read",
                    &[("keys", &all.len().to_string())],
                );
                Ok(Analysis::new().tag("probe", Some(&all.join(";")), 1.0))
            }
            "prior" => {
                let seen: Vec<String> = input
                    .prior_tags
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}={}",
                            p.plugin,
                            p.tag.name,
                            p.tag.value.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                Ok(Analysis::new().tag("probe", Some(&seen.join(";")), 1.0))
            }
            "spans" => {
                let span = TimeSpan {
                    start: 30.0,
                    end: 45.5,
                };
                let mut analysis = Analysis::new().tag_with(
                    "probe",
                    Some("spans"),
                    0.5,
                    Some(span),
                    Some("a fixed span for the host's tests"),
                );
                if let Some(model) = config::get("tokens") {
                    analysis = analysis.token_sequence(
                        "probe-tokens",
                        &model,
                        vec![vec![1.0, 0.0], vec![0.0, 1.0]],
                    );
                }
                Ok(analysis)
            }
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                Ok(Analysis::new().tag("probe", Some(&recurse(black_box(1)).to_string()), 1.0))
            }
            "panic" => panic!("sandbox-probe was asked to panic"),
            // A wild store past the end of linear memory (at 2 GiB): the host must report it as
            // a crash, not as the stack overflow that a store just below 4 GiB is.
            "out-of-bounds" => {
                let wild = black_box(0x8000_0000u32) as usize as *mut u8;
                // SAFETY: none; this is the misbehaviour under test. Wasm bounds-checks the store
                // and traps before anything is written.
                unsafe { std::ptr::write_volatile(wild, 1) };
                Ok(Analysis::new())
            }
            "open-file" => match std::fs::read_to_string(&target) {
                Ok(contents) => Ok(Analysis::new().tag("leaked-file", Some(&contents), 1.0)),
                Err(e) => Err(PluginError::Internal(format!("open {target}: {e}"))),
            },
            "read-env" => match std::env::var(&target) {
                Ok(value) => Ok(Analysis::new().tag("leaked-env", Some(&value), 1.0)),
                Err(e) => Err(PluginError::Internal(format!("env {target}: {e}"))),
            },
            "open-socket" => match std::net::TcpStream::connect(&target) {
                Ok(_) => Ok(Analysis::new().tag("leaked-socket", Some(&target), 1.0)),
                Err(e) => Err(PluginError::Internal(format!("connect {target}: {e}"))),
            },
            other => Err(PluginError::InvalidInput(format!(
                "unknown probe mode {other:?}"
            ))),
        }
    }
}

/// Every asset method, reported as one `probe` tag per asset: value = role and kind, evidence =
/// what each call answered (`err:` and the error for a refused one).
fn probe_media(input: &Input) -> Analysis {
    let mut analysis = Analysis::new();
    for asset in &input.assets {
        let show = |r: Result<String, tessera_plugin_sdk::MediaError>| match r {
            Ok(v) => v,
            Err(e) => format!("err:{e:?}"),
        };
        let answers = [
            format!("size={}", show(asset.byte_size().map(|n| n.to_string()))),
            format!(
                "image={}",
                show(asset.image_size().map(|(w, h)| format!("{w}x{h}")))
            ),
            format!(
                "thumb={}",
                show(asset.thumbnail(16).map(|t| format!(
                    "{}x{}:{}",
                    t.width,
                    t.height,
                    t.pixels.len()
                )))
            ),
            format!(
                "audio={}",
                show(asset.audio_duration().map(|d| format!("{d:.2}")))
            ),
            format!("text={}", show(asset.text().map(|t| t.len().to_string()))),
            format!(
                "read={}",
                show(asset.read(0, 4).map(|b| b.len().to_string()))
            ),
        ];
        let value = format!("{}:{:?}", asset.role(), asset.media_kind());
        analysis = analysis.tag_with("probe", Some(&value), 1.0, None, Some(&answers.join(" ")));
    }
    analysis
}

/// Recurses without bound (the base case never holds); `black_box` on the result keeps the
/// optimiser from turning the recursion into a loop.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    black_box(recurse(depth + 1)) ^ depth
}

export_plugin!(SandboxProbe);
