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
    /// The guest's linear memory as its code module declares it; `None` when it has none.
    pub memory: Option<MemoryLayout>,
}

/// A guest's linear memory at instantiation: what every fresh instance starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryLayout {
    /// Initial size in bytes.
    pub initial_bytes: u64,
    /// The stack's size in bytes when it sits below the static data, as wasm-ld lays out Rust
    /// guests (an overflow then traps instead of overwriting data); `None` otherwise.
    pub stack_bytes: Option<u64>,
}

/// Stacks from this size on are Rust's default (1 MiB) rather than the plugin kit's 64 KiB: a
/// fresh instance then costs ~19 µs instead of ~11 µs (BENCHMARKS.md, "Plugin call overhead").
pub const LARGE_STACK: u64 = 512 << 10;

/// The layout of the component's largest core module (the guest's own code; the others are
/// small adapters): its first memory's initial size and, from the first mutable `i32` global
/// (wasm-ld's `__stack_pointer`), the stack's size when no data lies below it. Read with
/// wasmparser, bounded by the component's own size; anything malformed gives `None`.
fn memory_layout(bytes: &[u8]) -> Option<MemoryLayout> {
    use wasmparser::{Parser, Payload};
    let mut largest: Option<&[u8]> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::ModuleSection {
            unchecked_range, ..
        } = payload.ok()?
        {
            let module = bytes.get(unchecked_range)?;
            if largest.is_none_or(|l| module.len() > l.len()) {
                largest = Some(module);
            }
        }
    }
    let module = largest?;
    let (mut initial, mut stack_pointer, mut lowest_data) = (None, None, None::<u64>);
    for payload in Parser::new(0).parse_all(module) {
        match payload.ok()? {
            Payload::MemorySection(memories) => {
                if let Some(memory) = memories.into_iter().next() {
                    let memory = memory.ok()?;
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    initial = Some(memory.initial.saturating_mul(page));
                }
            }
            Payload::GlobalSection(globals) if stack_pointer.is_none() => {
                for global in globals {
                    let global = global.ok()?;
                    if global.ty.mutable && global.ty.content_type == wasmparser::ValType::I32 {
                        let mut ops = global.init_expr.get_operators_reader();
                        if let Ok(wasmparser::Operator::I32Const { value }) = ops.read() {
                            stack_pointer = u64::try_from(value).ok();
                        }
                        break;
                    }
                }
            }
            Payload::DataSection(data) => {
                for segment in data {
                    let segment = segment.ok()?;
                    if let wasmparser::DataKind::Active { offset_expr, .. } = segment.kind {
                        let mut ops = offset_expr.get_operators_reader();
                        if let Ok(wasmparser::Operator::I32Const { value }) = ops.read() {
                            let offset = u64::try_from(value).ok()?;
                            lowest_data = Some(lowest_data.map_or(offset, |l| l.min(offset)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(MemoryLayout {
        initial_bytes: initial?,
        stack_bytes: stack_pointer.filter(|&sp| lowest_data.is_none_or(|data| data >= sp)),
    })
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
        memory: memory_layout(bytes),
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
        // The plugin kit links a 64 KiB stack below the static data (plugins/.cargo/config.toml).
        let memory = summary.memory.ok_or("no memory layout")?;
        assert_eq!(memory.stack_bytes, Some(64 << 10));
        assert!(memory.initial_bytes >= 64 << 10, "{memory:?}");
        assert!(memory.initial_bytes.is_multiple_of(64 << 10), "{memory:?}");
        // Garbage has no layout (and no panic).
        assert_eq!(memory_layout(b"\0asm\x0d\x00\x01\x00garbage"), None);
        assert_eq!(memory_layout(&bytes[..bytes.len() / 2]), None);
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
