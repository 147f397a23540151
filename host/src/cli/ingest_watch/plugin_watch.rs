//! The plugin watcher of `tessera ingest --watch`: reloads plugins whose files changed and
//! applies an operator's switches, swapping the plugin set as a whole.

use super::*;

/// The plugin watcher's view: what is loaded and switched, and what it saw last poll.
pub(super) struct PluginWatch<'a> {
    pub(super) data: &'a Path,
    pub(super) host: Arc<tessera::runtime::PluginHost>,
    pub(super) fusion: Option<tessera_indexes::Fusion>,
    /// The store's schema: a reload must write exactly these vectors.
    pub(super) schema: Schema,
    pub(super) pipeline: &'a Pipeline,
    /// Bumped after every swap, so the catalog loop runs a pass.
    pub(super) generation: &'a AtomicU64,
    pub(super) loaded: Vec<Loaded>,
    /// Per loaded plugin: its files when it was loaded.
    pub(super) stamps: Vec<Vec<FileStamp>>,
    /// Per loaded plugin: a change seen last poll, loaded once it holds still.
    pub(super) settling: Vec<Option<Vec<FileStamp>>>,
    /// Per loaded plugin: files whose reload was refused (not retried until they change).
    pub(super) refused: Vec<Option<Vec<FileStamp>>>,
    /// The switches in force, and the control file's stamp when last read.
    pub(super) control: PluginControl,
    pub(super) control_stamp: FileStamp,
}

impl PluginWatch<'_> {
    /// One poll: reloads changed plugins, applies changed switches, swaps the set when anything
    /// changed. Refusals are printed, never fatal.
    pub(super) fn poll(&mut self) {
        let mut candidate = self.loaded.clone();
        let mut news: Vec<String> = Vec::new();
        let mut reloaded: Vec<(usize, Vec<FileStamp>)> = Vec::new();
        for i in 0..candidate.len() {
            let Some(source) = candidate[i].source.clone() else {
                continue;
            };
            let now = plugin_stamp(&source);
            if now == self.stamps[i] || self.refused[i].as_ref() == Some(&now) {
                self.settling[i] = None;
                continue;
            }
            if self.settling[i].as_ref() != Some(&now) {
                self.settling[i] = Some(now);
                continue;
            }
            self.settling[i] = None;
            let old = &candidate[i].plugin;
            match self.reload(&source, old, &candidate, i) {
                Ok(plugin) => {
                    news.push(format!(
                        "plugin {} reloaded: {} -> {} ({})",
                        old.info().name,
                        old.info().version,
                        plugin.info().version,
                        source.display()
                    ));
                    candidate[i].plugin = plugin;
                    reloaded.push((i, now));
                }
                Err(e) => {
                    eprintln!(
                        "plugin {}: reload of {} refused; version {} keeps running: {e:#}",
                        old.info().name,
                        source.display(),
                        old.info().version
                    );
                    self.refused[i] = Some(now);
                }
            }
        }
        let mut control = self.control.clone();
        let control_now = file_stamp(&PluginControl::path(self.data));
        if control_now != self.control_stamp {
            self.control_stamp = control_now;
            // An operator's change may make a refused reload acceptable (a plugin it reads the
            // tags of, switched on again): give every refused reload another try.
            self.refused.iter_mut().for_each(|r| *r = None);
            match PluginControl::read(self.data) {
                Ok(read) => {
                    let names: Vec<&str> = candidate
                        .iter()
                        .map(|l| l.plugin.info().name.as_str())
                        .collect();
                    // Only names this change added: the others were reported already.
                    let before = self.control.unknown_names(&names);
                    for name in read.unknown_names(&names) {
                        if !before.contains(&name) {
                            eprintln!(
                                "{}",
                                PluginControl::unknown_warning(self.data, name, &names)
                            );
                        }
                    }
                    control = read;
                }
                Err(e) => eprintln!("{e}; the plugin switches stay as they were"),
            }
        }
        for l in &candidate {
            let name = &l.plugin.info().name;
            match (self.control.enabled(name), control.enabled(name)) {
                (true, false) => news.push(format!("plugin {name} disabled")),
                (false, true) => news.push(format!("plugin {name} enabled")),
                _ => {}
            }
        }
        if news.is_empty() {
            // At most names that no loaded plugin has changed: nothing to swap.
            self.control = control;
            return;
        }
        match self.pipeline.swap_plugins(
            ingest::enabled(&candidate, &control),
            ingest::disabled(&candidate, &control),
        ) {
            Ok(_) => {
                for line in &news {
                    println!("{line}");
                }
                for (i, stamp) in reloaded {
                    self.stamps[i] = stamp;
                }
                self.loaded = candidate;
                self.control = control;
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                eprintln!(
                    "plugin changes not applied ({}): {e}; the running plugins stay",
                    news.join("; ")
                );
                // Not retried until their files change, or the operator changes the switches.
                for (i, stamp) in reloaded {
                    self.refused[i] = Some(stamp);
                }
                // `self.control` stays the set in force; the control file is read again only
                // when it changes.
            }
        }
    }

    /// Loads `source` again and checks that it can take `old`'s place at `index`.
    fn reload(
        &self,
        source: &Path,
        old: &tessera::runtime::Plugin,
        loaded: &[Loaded],
        index: usize,
    ) -> anyhow::Result<tessera::runtime::Plugin> {
        let plugin = super::super::load::plugin(&self.host, source)?;
        if plugin.info().name != old.info().name {
            anyhow::bail!(
                "the file now holds plugin {:?}, not {:?}; a plugin is renamed by restarting the ingest",
                plugin.info().name,
                old.info().name
            );
        }
        let mut with = loaded.to_vec();
        with[index].plugin = plugin.clone();
        let schema = ingest::schema_of(&with, &self.host, self.fusion.as_ref())?;
        if schema.vectors != self.schema.vectors {
            anyhow::bail!(
                "it would write vectors [{}] but the store holds [{}]; the store's vectors are fixed when it is created: restart the ingest into a new data directory",
                schema.names(),
                self.schema.names()
            );
        }
        Ok(plugin)
    }
}
