//! The contract's versions: plugins built against 0.1 and 1.0 still run on this host, the
//! 1.1 minor only adds to 1.0, an unknown major or a newer minor is refused naming the
//! supported versions, and calls after load read the guest as the checked call at load did.

use super::*;

/// What `plugin` makes of a title with one poster, and a lookup of its tag values by name.
fn with_a_poster(
    plugin: &Plugin,
) -> (
    tessera::runtime::Analysis,
    impl Fn(&str) -> Option<String> + use<>,
) {
    let analysis = plugin
        .analyze(&title(
            "ok",
            "",
            vec![asset("poster", &data("images/photo.jpg"))],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let values: BTreeMap<String, Option<String>> = analysis
        .tags
        .iter()
        .map(|t| (t.name.clone(), t.value.clone()))
        .collect();
    (analysis, move |name: &str| {
        values.get(name).cloned().flatten()
    })
}

#[test]
fn a_plugin_built_against_contract_0_1_still_runs() {
    let f = fixture();
    let legacy = f.load("legacy-v0", PluginSettings::default());
    assert_eq!(legacy.contract(), Contract::V0);
    assert_eq!(legacy.info().contract.to_string(), "0.1.0");
    let (analysis, value) = with_a_poster(&legacy);
    assert_eq!(value("legacy-language").as_deref(), Some("en"));
    assert_eq!(
        value("legacy-assets").as_deref(),
        Some("1"),
        "0.1 sees assets as references"
    );
    assert_eq!(analysis.embeddings[0].name, "legacy-synopsis");
    let current = f.probe();
    assert_eq!(current.contract(), Contract::V1);
}

/// The call at load (`describe`) goes through the bindings, which type-check both exports;
/// later calls take them by index, unchecked. `describe` must read alike both ways on contracts
/// 0.1, 1.0 and 1.1; `analyze` runs by index in every test after load (here, twice alike).
#[test]
fn calls_after_load_see_what_the_checked_call_at_load_saw() {
    let f = fixture();
    for name in [
        "legacy-v0",
        "legacy-v1-0",
        "sandbox-probe",
        "synopsis-embedder",
    ] {
        let plugin = f.load(name, PluginSettings::default());
        for _ in 0..3 {
            let again = plugin
                .describe_fresh()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&again, plugin.info(), "{name}");
        }
    }
    let probe = f.probe();
    let tags = probe_tags(&probe, &title("ok", "", vec![]));
    assert!(!tags.is_empty());
    assert_eq!(tags[0].value.as_deref(), Some("ok"));
    assert_eq!(probe_tags(&probe, &title("ok", "", vec![])), tags);
}

#[test]
fn a_plugin_built_against_1_0_runs_on_the_1_1_host_and_1_1_plugins_get_their_budget() {
    let f = fixture();
    let settings = PluginSettings {
        config: BTreeMap::from([("greeting".to_string(), "bonjour".to_string())]),
        ..PluginSettings::default()
    };
    let legacy = f.load("legacy-v1-0", settings);
    assert_eq!(legacy.contract(), Contract::V1);
    assert_eq!(legacy.info().contract.to_string(), "1.0.0");
    let (analysis, value) = with_a_poster(&legacy);
    assert_eq!(value("legacy10-assets").as_deref(), Some("poster"));
    assert_eq!(value("legacy10-greeting").as_deref(), Some("bonjour"));
    assert_eq!(analysis.embeddings[0].name, "legacy10-synopsis");
    assert!(!analysis.embeddings[0].vector.is_empty());

    // The probe is built with the current SDK: contract 1.1.0, with `budget`. The fixture's
    // deadline is 120 s; what is left is under it and well above zero.
    let probe = f.probe();
    assert_eq!(probe.info().contract.to_string(), "1.1.0");
    let tags = probe_tags(&probe, &title("budget", "", vec![]));
    let left: u64 = tags[0]
        .value
        .as_deref()
        .and_then(|v| v.strip_prefix("left-ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{tags:?}"));
    assert!((60_000..=120_000).contains(&left), "{left}");
}

/// `wit` without the items marked `@since(version = VERSION)` (each with the doc comment above
/// it, and its body when it has one), with the package version set to `older`: what the
/// contract was before VERSION added them.
fn without_items_since(wit: &str, version: &str, current: &str, older: &str) -> String {
    let marker = format!("@since(version = {version})");
    let lines: Vec<&str> = wit.lines().collect();
    let mut keep = vec![true; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != marker {
            i += 1;
            continue;
        }
        let mut doc = i;
        while doc > 0 && lines[doc - 1].trim_start().starts_with("///") {
            doc -= 1;
        }
        let mut end = i + 1;
        if lines.get(end).is_some_and(|l| l.trim_end().ends_with('{')) {
            let mut depth = 0i32;
            loop {
                depth += lines[end].matches('{').count() as i32;
                depth -= lines[end].matches('}').count() as i32;
                if depth == 0 {
                    break;
                }
                end += 1;
            }
        }
        for k in keep.iter_mut().take(end + 1).skip(doc) {
            *k = false;
        }
        i = end + 1;
    }
    let text: Vec<&str> = lines
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(l, _)| *l)
        .collect();
    // Blank lines left where a block went do not matter.
    text.join("\n")
        .replace(
            &format!("package tessera:plugin@{current};"),
            &format!("package tessera:plugin@{older};"),
        )
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn contract_1_1_only_adds_to_1_0() -> Result<(), Box<dyn std::error::Error>> {
    // The 1.0.0 contract as released, frozen beside the plugin built against it.
    let released = std::fs::read_to_string(
        common::repo_root().join("plugins/legacy-v1-0/wit/tessera-plugin.wit"),
    )?;
    let current = std::fs::read_to_string(common::repo_root().join("wit/v1/tessera-plugin.wit"))?;
    assert!(current.contains("package tessera:plugin@1.1.0;"));
    let derived = without_items_since(&current, "1.1.0", "1.1.0", "1.0.0");
    let normalise = |s: &str| without_items_since(s, "none", "", "");
    assert_eq!(
        derived,
        normalise(&released),
        "wit/v1 minus its 1.1.0 items must be the released 1.0.0 contract: 1.1 may only add"
    );
    // The check can fail: removing a 1.0.0 item is caught.
    let broken = current.replace("    all: func() -> list<tuple<string, string>>;\n", "");
    assert_ne!(
        without_items_since(&broken, "1.1.0", "1.1.0", "1.0.0"),
        derived
    );
    Ok(())
}

/// A component importing `tessera:plugin/log@VERSION` (an empty instance type): what a plugin
/// built against that contract version looks like to the host's version check.
fn component_importing(version: &str) -> Vec<u8> {
    let mut component = wasm_encoder::Component::new();
    let mut types = wasm_encoder::ComponentTypeSection::new();
    types.instance(&wasm_encoder::InstanceType::new());
    component.section(&types);
    let mut imports = wasm_encoder::ComponentImportSection::new();
    imports.import(
        format!("tessera:plugin/log@{version}").as_str(),
        wasm_encoder::ComponentTypeRef::Instance(0),
    );
    component.section(&imports);
    component.finish()
}

#[test]
fn an_unknown_major_or_a_newer_minor_is_refused_with_the_supported_versions() {
    let f = fixture();
    let refused = |version: &str| -> String {
        match f.host.load("future.wasm", &component_importing(version)) {
            Err(e @ PluginError::Load { .. }) => e.to_string(),
            Err(other) => panic!("{version}: expected a load error, got {other}"),
            Ok(_) => panic!("{version}: loaded"),
        }
    };
    let major = refused("2.0.0");
    println!("{major}");
    assert!(
        major.contains("future.wasm")
            && major.contains("tessera:plugin@2.0.0")
            && major.contains("0.1.x")
            && major.contains("1.x"),
        "{major}"
    );
    let minor = refused("1.4.0");
    assert!(minor.contains("newer than this host's 1.1.0"), "{minor}");
    let zero = refused("0.2.0");
    assert!(zero.contains("tessera:plugin@0.2.0"), "{zero}");
}
