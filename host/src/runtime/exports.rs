//! The guest's two exports, `describe` and `analyze`, found once per loaded plugin rather than on
//! every call.
//!
//! The `bindgen!` wrappers (`TaggerPre::instantiate_async`) look up and type-check every export
//! of each fresh instance: walking `analyze`'s and `describe`'s record types is ~0.5 µs of a
//! ~11 µs call (BENCHMARKS.md, "Plugin call overhead"). An export's type is a property of the
//! component, the same in every instance of one `InstancePre`, so a plugin's first call, at
//! load, goes through the checked wrappers, and later calls take the exports by index.

use super::bindings::{v0, v1};
use super::{Asset, PluginState};
use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, Instance, Lift, Lower, Resource, TypedFunc,
};

/// Where a plugin's exports are, for a component whose export types have been checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Exports {
    describe: ComponentExportIndex,
    analyze: ComponentExportIndex,
}

/// `describe`'s signature on each contract line, as the generated bindings type it.
type DescribeV1 = TypedFunc<(), (v1::types::PluginInfo,)>;
type DescribeV0 = TypedFunc<(), (v0::types::PluginInfo,)>;

/// `analyze`'s signatures likewise (borrowed arguments, as the bindings' `call_analyze`).
type AnalyzeV1<'a> = TypedFunc<
    (
        &'a v1::types::Title,
        &'a [Resource<Asset>],
        &'a [v1::types::PriorTag],
    ),
    (Result<v1::types::Analysis, v1::types::PluginError>,),
>;
type AnalyzeV0<'a> =
    TypedFunc<(&'a v0::types::Title,), (Result<v0::types::Analysis, v0::types::PluginError>,)>;

impl Exports {
    /// Finds the exports in `component`. Only for a component whose exports a `bindgen!` load
    /// has already type-checked against the bindings of the line it is linked to: the typed
    /// functions handed out later rely on it.
    pub(super) fn checked(component: &Component) -> Option<Exports> {
        Some(Exports {
            describe: component.get_export_index(None, "describe")?,
            analyze: component.get_export_index(None, "analyze")?,
        })
    }

    pub(super) fn describe_v1(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
    ) -> wasmtime::Result<DescribeV1> {
        self.typed(store, instance, &self.describe, "describe")
    }

    pub(super) fn describe_v0(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
    ) -> wasmtime::Result<DescribeV0> {
        self.typed(store, instance, &self.describe, "describe")
    }

    pub(super) fn analyze_v1<'a>(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
    ) -> wasmtime::Result<AnalyzeV1<'a>> {
        self.typed(store, instance, &self.analyze, "analyze")
    }

    pub(super) fn analyze_v0<'a>(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
    ) -> wasmtime::Result<AnalyzeV0<'a>> {
        self.typed(store, instance, &self.analyze, "analyze")
    }

    /// The export at `index` typed as `TypedFunc<P, R>`; private so that only the signatures
    /// above, the bindings' own, are ever used.
    fn typed<P, R>(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
        index: &ComponentExportIndex,
        name: &str,
    ) -> wasmtime::Result<TypedFunc<P, R>>
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        let func = instance
            .get_func(&mut *store, index)
            .ok_or_else(|| wasmtime::format_err!("the component exports no function `{name}`"))?;
        // SAFETY: `new_unchecked` requires the function's component type to match `P` and `R`.
        // `Exports` is only made (`checked`) for a component the bindings have type-checked
        // against these same generated types: `TaggerPre::new` checks both exports against the
        // linked component's type when the plugin is linked, and the plugin's first call, at
        // load, checks them again on an instance. `instance` is an instance of that component:
        // export types belong to the component, not to an instance, and the only resource
        // either export mentions (`asset`) is the host's, the same type in every store.
        #[allow(unsafe_code)]
        let typed = unsafe { TypedFunc::new_unchecked(func) };
        Ok(typed)
    }
}
