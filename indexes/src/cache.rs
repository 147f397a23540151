//! A bounded read-through cache of entities in front of a store only this process writes.
//!
//! Reading a title from the embedded store costs far more than handing out a copy held in
//! memory (the engine parses the payload's JSON, then it is converted to an [`Entity`]), and a
//! ranker asks for the same popular titles again and again. The cache keeps the titles it read
//! until its byte budget is spent, then evicts by the clock algorithm (a title read since the
//! hand last passed gets a second chance).
//!
//! Freshness comes from the store's change feed: every read first compares the store's last
//! change number with the one the cache is current to and, when the store moved on, drops the
//! titles changed since. A title read from the store is kept only when no write finished while
//! it was being read, so a read racing a write never leaves the older version behind. Catching
//! up reads the feed, which waits for a write in progress; one call does it at a time, and calls
//! arriving meanwhile read the store directly instead of queueing behind it. This is
//! sound only when change numbers follow write order, which holds for a store written by this
//! process alone: [`CachedReads::new`] refuses a shared store (a Qdrant server other processes
//! write), whose writers may commit out of number order.
//!
//! A caller may also keep each held title in an encoding of its own ([`CachedReads::get_encoded`]:
//! the gRPC server keeps the response message of each title, so a repeated read copies one block
//! of bytes instead of building the message again). An encoding is kept only with the held copy
//! it was made from (not with a newer or merged one), goes when that copy goes or when newer
//! forms take its place, and counts against the same budget.
//!
//! What this module must not do: hold more than its budget, or serve a title older than the
//! last write that completed before the read began.

use crate::{Entity, EntityStore, IndexError};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// More changes than this since the cache was last current: cheaper to start again empty than
/// to read them all from the feed.
const MAX_CHANGES_TO_FOLLOW: u64 = 4096;

/// Change feed page size while catching up.
const CHANGES_PAGE: usize = 512;

/// Encodings kept per held title: two callers asking in different forms each keep theirs, a
/// third replaces the oldest.
const ENCODINGS_PER_TITLE: usize = 2;

/// A title's bytes in a caller's encoding (see [`CachedReads::get_encoded`]).
pub type Encoded = bytes::Bytes;

/// What a cached copy of a title holds: every vector, or only the named ones.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    All,
    Only(Vec<String>),
}

impl Held {
    fn of(vectors: Option<&[String]>) -> Self {
        match vectors {
            None => Held::All,
            Some(names) => {
                let mut names = names.to_vec();
                names.sort();
                names.dedup();
                Held::Only(names)
            }
        }
    }

    /// The vectors held, `None` for all.
    fn names(&self) -> Option<&[String]> {
        match self {
            Held::All => None,
            Held::Only(names) => Some(names),
        }
    }

    /// Whether a copy holding this answers a read of `vectors`.
    fn covers(&self, vectors: Option<&[String]>) -> bool {
        match (self, vectors) {
            (Held::All, _) => true,
            (Held::Only(_), None) => false,
            (Held::Only(held), Some(wanted)) => {
                wanted.iter().all(|w| held.binary_search(w).is_ok())
            }
        }
    }
}

#[derive(Debug)]
struct Slot {
    entity: Arc<Entity>,
    held: Held,
    bytes: usize,
    /// Read since the clock hand last passed it.
    referenced: bool,
    /// Tells this slot's place on the clock from places of earlier copies of the same title.
    generation: u64,
    /// The entity in callers' encodings, by form, oldest first.
    encodings: Vec<(Box<str>, Encoded)>,
}

impl Slot {
    fn encoding(&self, form: &str) -> Option<&Encoded> {
        self.encodings
            .iter()
            .find_map(|(f, bytes)| (**f == *form).then_some(bytes))
    }
}

/// Bytes one kept encoding takes, as the budget counts it.
fn encoding_footprint(form: &str, bytes: &[u8]) -> usize {
    form.len() + bytes.len() + 2 * 32 + std::mem::size_of::<(Box<str>, Encoded)>()
}

#[derive(Debug)]
struct State {
    /// The store change number every held copy is current to.
    seen: u64,
    slots: HashMap<String, Slot>,
    /// The clock: titles in insertion order, with the generation they were inserted at.
    clock: VecDeque<(String, u64)>,
    bytes: usize,
    next_generation: u64,
}

impl State {
    fn remove(&mut self, id: &str) {
        if let Some(slot) = self.slots.remove(id) {
            self.bytes -= slot.bytes;
        }
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.clock.clear();
        self.bytes = 0;
    }

    fn insert(&mut self, entity: Arc<Entity>, held: Held, budget: usize) {
        let (entity, held) = match self.slots.get(&entity.id) {
            // A call that read the title meanwhile kept at least as much.
            Some(slot) if slot.held.covers(held.names()) => return,
            // Two readers of different vectors of a title would otherwise evict each other's
            // copy at every call: keep one copy of both. (Both are current: a held copy changed
            // since is dropped before anything is inserted.)
            Some(Slot {
                entity: theirs,
                held: Held::Only(their_names),
                ..
            }) if matches!(held, Held::Only(_)) => {
                let mut both = Entity::clone(&entity);
                for (name, values) in &theirs.vectors {
                    both.vectors
                        .entry(name.clone())
                        .or_insert_with(|| values.clone());
                }
                for (name, tokens) in &theirs.multivectors {
                    both.multivectors
                        .entry(name.clone())
                        .or_insert_with(|| tokens.clone());
                }
                let mut names = their_names.clone();
                names.extend(held.names().unwrap_or_default().iter().cloned());
                (Arc::new(both), Held::of(Some(&names)))
            }
            _ => (entity, held),
        };
        // The id is held twice more: as the map's key and on the clock.
        let bytes = footprint(&entity) + 2 * (entity.id.len() + 32) + std::mem::size_of::<Slot>();
        if bytes > budget {
            return;
        }
        self.remove(&entity.id);
        let generation = self.next_generation;
        self.next_generation += 1;
        self.clock.push_back((entity.id.clone(), generation));
        self.bytes += bytes;
        self.slots.insert(
            entity.id.clone(),
            Slot {
                entity,
                held,
                bytes,
                referenced: false,
                generation,
                encodings: Vec::new(),
            },
        );
        self.evict(budget);
        // Places of dropped copies stay on the clock until the hand reaches them; rebuilt
        // when they outnumber the live ones, so the clock stays bounded by what is held.
        if self.clock.len() > 2 * self.slots.len() + 1024 {
            let slots = &self.slots;
            self.clock.retain(|(id, generation)| {
                slots.get(id).is_some_and(|s| s.generation == *generation)
            });
        }
    }

    /// Keeps `bytes`, the encoding of `entity` in `form`, with the held copy of the title, if
    /// that copy is still `entity` itself (not a newer one, nor a merged one: the encoding must be
    /// of exactly what is held) and the encoding fits beside it.
    fn keep_encoding(&mut self, entity: &Arc<Entity>, form: &str, bytes: &Encoded, budget: usize) {
        let Some(slot) = self.slots.get_mut(&entity.id) else {
            return;
        };
        if !Arc::ptr_eq(&slot.entity, entity) || slot.encoding(form).is_some() {
            return;
        }
        let cost = encoding_footprint(form, bytes);
        // The oldest encoding makes way when the title already has its share of them.
        let full = slot.encodings.len() >= ENCODINGS_PER_TITLE;
        let freeing = match slot.encodings.first() {
            Some((old_form, old)) if full => encoding_footprint(old_form, old),
            _ => 0,
        };
        if slot.bytes - freeing + cost > budget {
            return;
        }
        if full {
            let (old_form, old) = slot.encodings.remove(0);
            let freed = encoding_footprint(&old_form, &old);
            slot.bytes -= freed;
            self.bytes -= freed;
        }
        slot.encodings.push((form.into(), bytes.clone()));
        slot.bytes += cost;
        self.bytes += cost;
    }

    fn evict(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some((id, generation)) = self.clock.pop_front() else {
                return;
            };
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            if slot.referenced {
                slot.referenced = false;
                self.clock.push_back((id, generation));
            } else {
                self.remove(&id);
            }
        }
    }
}

/// Counts of a cache's work so far, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Titles answered from memory.
    pub hits: u64,
    /// Ids looked for and not held, so read from the store (ids the store does not hold
    /// included; an id asked for twice in one call counts twice).
    pub misses: u64,
    /// Bytes the held titles take, as estimated, their kept encodings included.
    pub bytes: usize,
    /// Titles held.
    pub entries: usize,
    /// The budget.
    pub budget: usize,
}

/// Reads of a store through a bounded cache of whole titles (see the module docs).
pub struct CachedReads {
    store: Arc<dyn EntityStore>,
    budget: usize,
    state: Mutex<State>,
    /// Held by the one call reading the change feed (see the module docs).
    catching_up: Mutex<()>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for CachedReads {
    // Not the held titles: a cache of 100 000 of them is no debug line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedReads")
            .field("store", &self.store.location())
            .field("stats", &self.stats())
            .finish()
    }
}

impl CachedReads {
    /// A cache of at most `budget` bytes of titles read from `store`; `Ok(None)` when the budget
    /// is 0 or the store is shared with other writers (see the module docs).
    pub fn new(store: Arc<dyn EntityStore>, budget: usize) -> Result<Option<Self>, IndexError> {
        if budget == 0 || store.shared() {
            return Ok(None);
        }
        let seen = store.last_change()?;
        Ok(Some(CachedReads {
            store,
            budget,
            state: Mutex::new(State {
                seen,
                slots: HashMap::new(),
                clock: VecDeque::new(),
                bytes: 0,
                next_generation: 0,
            }),
            catching_up: Mutex::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }))
    }

    /// What the cache has done and holds.
    pub fn stats(&self) -> CacheStats {
        let (bytes, entries) = self
            .lock()
            .map(|s| (s.bytes, s.slots.len()))
            .unwrap_or_default();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes,
            entries,
            budget: self.budget,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, IndexError> {
        self.state
            .lock()
            .map_err(|_| IndexError::Engine("the entity cache was poisoned by a panic".into()))
    }

    /// [`EntityStore::get_selected`] through the cache: titles current as of the call, shared
    /// rather than copied.
    pub fn get_selected(
        &self,
        ids: &[String],
        vectors: Option<&[String]>,
    ) -> Result<Vec<Option<Arc<Entity>>>, IndexError> {
        let Some(epoch) = self.catch_up()? else {
            self.misses.fetch_add(ids.len() as u64, Ordering::Relaxed);
            let read = self.store.get_selected(ids, vectors)?;
            return Ok(read.into_iter().map(|e| e.map(Arc::new)).collect());
        };
        let mut found: Vec<Option<Arc<Entity>>> = vec![None; ids.len()];
        let mut missing = Vec::new();
        {
            let mut state = self.lock()?;
            for (i, id) in ids.iter().enumerate() {
                match state.slots.get_mut(id) {
                    Some(slot) if slot.held.covers(vectors) => {
                        slot.referenced = true;
                        found[i] = Some(slot.entity.clone());
                    }
                    _ => missing.push(i),
                }
            }
        }
        self.hits
            .fetch_add((ids.len() - missing.len()) as u64, Ordering::Relaxed);
        if missing.is_empty() {
            return Ok(found);
        }
        self.misses
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        // An id asked for twice is read once.
        let mut missing_ids: Vec<String> = missing.iter().map(|&i| ids[i].clone()).collect();
        missing_ids.sort_unstable();
        missing_ids.dedup();
        let read = self.store.get_selected(&missing_ids, vectors)?;
        let read: HashMap<String, Arc<Entity>> = missing_ids
            .into_iter()
            .zip(read)
            .filter_map(|(id, entity)| Some((id, Arc::new(entity?))))
            .collect();
        // Kept only if no write finished since this call caught up: a title read across a
        // write may be its older version.
        if self.store.last_change()? == epoch {
            let mut state = self.lock()?;
            if state.seen == epoch {
                let held = Held::of(vectors);
                for entity in read.values() {
                    state.insert(entity.clone(), held.clone(), self.budget);
                }
            }
        }
        for i in missing {
            found[i] = read.get(&ids[i]).cloned();
        }
        Ok(found)
    }

    /// [`Self::get_selected`], each title handed out as `encode` turns it into bytes. The bytes
    /// are kept with the held copy of the title (in the budget, dropped with the copy) and handed
    /// out again to later calls with the same `form`, without calling `encode`; so `form` must
    /// name everything the bytes depend on besides the title, the vectors asked for included:
    /// calls passing equal forms get each other's bytes.
    pub fn get_encoded(
        &self,
        ids: &[String],
        vectors: Option<&[String]>,
        form: &str,
        encode: &dyn Fn(&Entity) -> Vec<u8>,
    ) -> Result<Vec<Option<Encoded>>, IndexError> {
        let mut found: Vec<Option<Encoded>> = vec![None; ids.len()];
        let mut rest = Vec::new();
        if self.catch_up()?.is_some() {
            let mut state = self.lock()?;
            for (i, id) in ids.iter().enumerate() {
                match state.slots.get_mut(id) {
                    Some(slot) if slot.held.covers(vectors) => match slot.encoding(form) {
                        Some(bytes) => {
                            found[i] = Some(bytes.clone());
                            slot.referenced = true;
                        }
                        None => rest.push(i),
                    },
                    _ => rest.push(i),
                }
            }
        } else {
            rest.extend(0..ids.len());
        }
        self.hits
            .fetch_add((ids.len() - rest.len()) as u64, Ordering::Relaxed);
        if rest.is_empty() {
            return Ok(found);
        }
        // The others through the cache as titles (held, read or read and kept), encoded here,
        // outside the lock.
        let rest_ids: Vec<String> = rest.iter().map(|&i| ids[i].clone()).collect();
        let titles = self.get_selected(&rest_ids, vectors)?;
        let encoded: Vec<Option<(Arc<Entity>, Encoded)>> = titles
            .into_iter()
            .map(|title| {
                title.map(|t| {
                    let bytes = Encoded::from(encode(&t));
                    (t, bytes)
                })
            })
            .collect();
        {
            let mut state = self.lock()?;
            for (entity, bytes) in encoded.iter().flatten() {
                state.keep_encoding(entity, form, bytes, self.budget);
            }
            state.evict(self.budget);
        }
        for (i, title) in rest.into_iter().zip(encoded) {
            found[i] = title.map(|(_, bytes)| bytes);
        }
        Ok(found)
    }

    /// Drops the titles changed since the cache was last current; returns the change number
    /// it is now current to, or `None` while another call is catching up (this one then reads
    /// the store directly rather than wait: the feed read may wait on a write in progress).
    fn catch_up(&self) -> Result<Option<u64>, IndexError> {
        let last = self.store.last_change()?;
        let seen = self.lock()?.seen;
        if last <= seen {
            return Ok(Some(seen));
        }
        let _only_one = match self.catching_up.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            // It guards no data: a panic while it was held leaves nothing to distrust.
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        // The call that held it may have caught up past `last` already.
        let seen = self.lock()?.seen;
        if last <= seen {
            return Ok(Some(seen));
        }
        // Read outside the state lock: other calls keep being answered meanwhile.
        let changed = self.changed_since(seen, last)?;
        let mut state = self.lock()?;
        match changed {
            None => state.clear(),
            Some(ids) => ids.iter().for_each(|id| state.remove(id)),
        }
        state.seen = last;
        Ok(Some(last))
    }

    /// The titles changed after change `seen`, read to the end of the feed rather than to
    /// `last` (a title rewritten meanwhile has moved past `last`, and dropping a title needlessly
    /// costs only a read); `None` when there are too many to be worth following.
    fn changed_since(&self, seen: u64, last: u64) -> Result<Option<Vec<String>>, IndexError> {
        if last - seen > MAX_CHANGES_TO_FOLLOW {
            return Ok(None);
        }
        let mut ids = Vec::new();
        let mut after = seen;
        loop {
            let page = self.store.changes(after, CHANGES_PAGE)?;
            let full = page.len() >= CHANGES_PAGE;
            let from = after;
            for change in page {
                after = after.max(change.seq);
                ids.push(change.id);
            }
            if !full {
                return Ok(Some(ids));
            }
            // Writes keep coming, or a full page did not move on (more than a page of titles
            // share a number): start over empty instead.
            if ids.len() as u64 > MAX_CHANGES_TO_FOLLOW || after == from {
                return Ok(None);
            }
        }
    }
}

/// Estimated heap bytes of an entity: its floats and strings, plus a per-allocation overhead.
fn footprint(entity: &Entity) -> usize {
    const ALLOC: usize = 32;
    let text = |s: &str| s.len() + ALLOC;
    let floats = |v: &[f32]| std::mem::size_of_val(v) + ALLOC;
    let mut bytes = std::mem::size_of::<Entity>()
        + text(&entity.id)
        + text(&entity.name)
        + text(&entity.language)
        + entity.input.as_deref().map_or(0, text);
    // A B-tree map's nodes hold room for 11 entries whatever their use.
    fn nodes<K, V>(map: &std::collections::BTreeMap<K, V>) -> usize {
        map.len().div_ceil(11) * (11 * (std::mem::size_of::<K>() + std::mem::size_of::<V>()) + 64)
    }
    bytes += nodes(&entity.metadata) + nodes(&entity.vectors) + nodes(&entity.multivectors);
    bytes += entity
        .metadata
        .iter()
        .map(|(k, v)| text(k) + text(v))
        .sum::<usize>();
    bytes += entity
        .vectors
        .iter()
        .map(|(name, v)| text(name) + floats(v))
        .sum::<usize>();
    bytes += entity
        .multivectors
        .iter()
        .map(|(name, tokens)| text(name) + tokens.iter().map(|t| floats(t) + 24).sum::<usize>())
        .sum::<usize>();
    bytes += entity
        .tags
        .iter()
        .map(|t| {
            std::mem::size_of_val(t)
                + text(&t.name)
                + text(&t.plugin)
                + text(&t.plugin_version)
                + t.value.as_deref().map_or(0, text)
                + t.evidence.as_deref().map_or(0, text)
                + t.run.as_deref().map_or(0, text)
                + t.models.iter().map(|m| text(m)).sum::<usize>()
        })
        .sum::<usize>();
    bytes += entity
        .outputs
        .iter()
        .map(|o| {
            std::mem::size_of_val(o)
                + text(&o.plugin)
                + text(&o.version)
                + text(&o.run)
                + o.models.iter().map(|m| text(m)).sum::<usize>()
        })
        .sum::<usize>();
    bytes += entity
        .assets
        .iter()
        .map(|a| std::mem::size_of_val(a) + text(&a.kind) + text(&a.uri) + 64 + ALLOC)
        .sum::<usize>();
    bytes += entity
        .overrides
        .iter()
        .map(|o| {
            std::mem::size_of_val(o)
                + text(&o.name)
                + o.value.as_deref().map_or(0, text)
                + text(&o.reason)
                + text(&o.by)
        })
        .sum::<usize>();
    if let Some(sid) = &entity.semantic_id {
        bytes += text(&sid.codebook) + std::mem::size_of_val(&sid.id.0[..]) + ALLOC;
    }
    bytes
}

#[cfg(test)]
mod tests;
