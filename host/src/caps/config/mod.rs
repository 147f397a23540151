//! The `config` capability (contract 1.x): the `[config]` table of the plugin's manifest, read
//! only.

use crate::runtime::bindings::v1::config;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// Per-instance state: the plugin's configuration, shared by all its instances.
#[derive(Debug, Clone, Default)]
pub struct ConfigCtx {
    /// Keys and values, sorted by key.
    pub values: Arc<BTreeMap<String, String>>,
}

impl config::Host for ConfigCtx {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }

    fn all(&mut self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

struct ConfigData;

impl HasData for ConfigData {
    type Data<'a> = &'a mut ConfigCtx;
}

/// Links the `config` interface, with `get` picking the [`ConfigCtx`] out of the store data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigCtx,
) -> wasmtime::Result<()> {
    config::add_to_linker::<T, ConfigData>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::v1::config::Host;

    #[test]
    fn reads_keys_and_lists_them_sorted() {
        let mut ctx = ConfigCtx {
            values: Arc::new(BTreeMap::from([
                ("threshold".to_string(), "0.4".to_string()),
                ("labels".to_string(), "a,b".to_string()),
            ])),
        };
        assert_eq!(ctx.get("threshold".into()).as_deref(), Some("0.4"));
        assert_eq!(ctx.get("missing".into()), None);
        assert_eq!(ctx.all()[0].0, "labels");
    }
}
