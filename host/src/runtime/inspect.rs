//! What a component imports and exports, read from its type without running it: for plugin
//! authors (`tessera plugin inspect`) and for checking which contract version a plugin targets.

use super::PluginError;
use serde::Serialize;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Config, Engine};

/// The WIT package of the plugin contract.
pub const CONTRACT_PACKAGE: &str = "tessera:plugin";

/// One import or export: a bare function or an interface instance with its functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The name, e.g. `tessera:plugin/models@0.1.0` or `describe`.
    pub name: String,
    /// `func`, `instance`, `type`, `resource`, `module` or `component`.
    pub kind: &'static str,
    /// Functions of an instance (for a function: its parameter names).
    pub functions: Vec<String>,
}

/// A component's interface, as `tessera plugin inspect` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentSummary {
    /// Size of the component in bytes.
    pub bytes: usize,
    /// The contract versions of the `tessera:plugin` interfaces it imports (usually one).
    pub contract_versions: Vec<String>,
    /// Whether this host can run it: the contract line it links against, or why not.
    pub host_support: String,
    /// Whether it exports the `tagger` world's functions (`describe`, `analyze`).
    pub tagger: bool,
    /// Imports, in the component's order.
    pub imports: Vec<Item>,
    /// Exports, in the component's order.
    pub exports: Vec<Item>,
}

fn kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) | ComponentItem::CoreFunc(_) => "func",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

fn item(engine: &Engine, name: &str, ty: &ComponentItem) -> Item {
    let functions = match ty {
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
            .map(|(n, _)| n.to_string())
            .collect(),
        ComponentItem::ComponentFunc(func) => func.params().map(|(n, _)| n.to_string()).collect(),
        _ => Vec::new(),
    };
    Item {
        name: name.to_string(),
        kind: kind(ty),
        functions,
    }
}

/// Reads `bytes` as a component (compiling it, not running it). `source` names it in errors.
pub fn inspect(source: &str, bytes: &[u8]) -> Result<ComponentSummary, PluginError> {
    let load_err = |reason: String| PluginError::Load {
        plugin: source.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(load_err("the component is empty (0 bytes)".into()));
    }
    if is_core_module(bytes) {
        return Err(load_err(
            "this is a core WebAssembly module, not a component; build the plugin for \
             wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools \
             component new`"
                .into(),
        ));
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).map_err(|e| PluginError::Host(format!("{e:#}")))?;
    let component =
        Component::from_binary(&engine, bytes).map_err(|e| load_err(format!("{e:#}")))?;
    let ty = component.component_type();
    let imports: Vec<Item> = ty
        .imports(&engine)
        .map(|(name, e)| item(&engine, name, &e.ty))
        .collect();
    let exports: Vec<Item> = ty
        .exports(&engine)
        .map(|(name, e)| item(&engine, name, &e.ty))
        .collect();
    let mut contract_versions: Vec<String> = imports
        .iter()
        .chain(&exports)
        .filter_map(|i| i.name.strip_prefix(CONTRACT_PACKAGE))
        .filter_map(|rest| rest.split_once('@').map(|(_, v)| v.to_string()))
        .collect();
    contract_versions.sort();
    contract_versions.dedup();
    let exported = |n: &str| exports.iter().any(|e| e.name == n && e.kind == "func");
    let host_support = match super::contract::versions_in(imports.iter().map(|i| i.name.as_str()))
        .and_then(|v| super::contract::select(&v))
    {
        Ok(Some(line)) => format!(
            "yes: linked as tessera:plugin {} (this host supports {})",
            line.version(),
            super::contract::supported_description()
        ),
        Ok(None) => format!(
            "maybe: it imports nothing of the contract; its exports decide (this host supports {})",
            super::contract::supported_description()
        ),
        Err(reason) => format!("no: {reason}"),
    };
    Ok(ComponentSummary {
        bytes: bytes.len(),
        contract_versions,
        host_support,
        tagger: exported("describe") && exported("analyze"),
        imports,
        exports,
    })
}

/// A core module starts with `\0asm` and version 1; a component uses layer 1 in the header.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_built_in_plugin() -> Result<(), Box<dyn std::error::Error>> {
        if let Some(error) = tessera_plugin_artifacts::BUILD_ERROR {
            println!("skip: the built-in plugins were not built: {error}");
            return Ok(());
        }
        let bytes = tessera_plugin_artifacts::component("synopsis-embedder")?;
        let summary = inspect("synopsis-embedder", &bytes)?;
        assert!(summary.tagger);
        assert_eq!(summary.contract_versions, ["1.1.0"]);
        assert!(
            summary.host_support.starts_with("yes"),
            "{}",
            summary.host_support
        );
        let models = summary
            .imports
            .iter()
            .find(|i| i.name == "tessera:plugin/models@1.1.0")
            .ok_or("no models import")?;
        assert_eq!(models.kind, "instance");
        assert_eq!(models.functions, ["embed-text"]);
        let analyze = summary
            .exports
            .iter()
            .find(|e| e.name == "analyze")
            .ok_or("no analyze export")?;
        assert_eq!(analyze.kind, "func");
        Ok(())
    }

    #[test]
    fn refuses_modules_and_garbage_by_name() {
        let core = b"\0asm\x01\x00\x00\x00";
        let msg = |b: &[u8]| {
            inspect("probe.wasm", b)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(msg(core).contains("probe.wasm") && msg(core).contains("core WebAssembly module"));
        assert!(msg(b"").contains("empty"));
        assert!(msg(b"not wasm at all").contains("probe.wasm"));
    }
}
