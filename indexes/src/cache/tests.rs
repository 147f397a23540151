use super::*;
use crate::{EdgeStore, Needing, Neighbor, Output, Page, Schema, Search, StoredSid, VectorSpec};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

fn schema() -> Schema {
    Schema::new([
        ("synopsis".to_string(), VectorSpec::dense(3, "m")),
        ("poster".to_string(), VectorSpec::dense(3, "m")),
    ])
}

fn entity(id: &str, name: &str) -> Entity {
    Entity {
        id: id.into(),
        name: name.into(),
        language: "en".into(),
        vectors: BTreeMap::from([
            ("synopsis".to_string(), vec![1.0, 0.0, 0.0]),
            ("poster".to_string(), vec![0.0, 1.0, 0.0]),
        ]),
        ..Default::default()
    }
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

type Hook = Box<dyn FnOnce(&EdgeStore) -> Result<(), IndexError> + Send>;

/// The embedded store, counting the titles read from it, with a hook run inside the next read
/// (after the engine answered, before the cache sees the answer).
#[derive(Debug)]
struct Watched {
    inner: EdgeStore,
    titles_read: AtomicUsize,
    during_next_read: Mutex<Option<HookBox>>,
    /// Run inside the next change-feed read, before it answers.
    during_next_changes: Mutex<Option<HookBox>>,
    /// Says it is written by other processes too, as a Qdrant server store does.
    shared: bool,
}

struct HookBox(Hook);

impl std::fmt::Debug for HookBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookBox")
    }
}

impl Watched {
    fn read(&self) -> usize {
        self.titles_read.load(Ordering::SeqCst)
    }
}

impl EntityStore for Watched {
    fn schema(&self) -> &Schema {
        self.inner.schema()
    }
    fn upsert(&self, entities: &[Entity]) -> Result<(), IndexError> {
        self.inner.upsert(entities)
    }
    fn changes(&self, after: u64, limit: usize) -> Result<Vec<crate::Change>, IndexError> {
        let hook = self
            .during_next_changes
            .lock()
            .map_err(|_| IndexError::poisoned())?
            .take();
        if let Some(HookBox(hook)) = hook {
            hook(&self.inner)?;
        }
        self.inner.changes(after, limit)
    }
    fn last_change(&self) -> Result<u64, IndexError> {
        self.inner.last_change()
    }
    fn get_selected(
        &self,
        ids: &[String],
        vectors: Option<&[String]>,
    ) -> Result<Vec<Option<Entity>>, IndexError> {
        self.titles_read.fetch_add(ids.len(), Ordering::SeqCst);
        let read = self.inner.get_selected(ids, vectors);
        let hook = self
            .during_next_read
            .lock()
            .map_err(|_| IndexError::poisoned())?
            .take();
        if let Some(HookBox(hook)) = hook {
            hook(&self.inner)?;
        }
        read
    }
    fn search(&self, search: &Search<'_>) -> Result<Vec<Neighbor>, IndexError> {
        self.inner.search(search)
    }
    fn scan(
        &self,
        cursor: Option<&str>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<Page, IndexError> {
        self.inner.scan(cursor, limit, with_vectors)
    }
    fn lookup_semantic_id(
        &self,
        prefix: &[u16],
        limit: usize,
    ) -> Result<Vec<(String, StoredSid)>, IndexError> {
        self.inner.lookup_semantic_id(prefix, limit)
    }
    fn needing(&self, current: &Output) -> Result<Needing, IndexError> {
        self.inner.needing(current)
    }
    fn count(&self) -> Result<usize, IndexError> {
        self.inner.count()
    }
    fn flush(&self) -> Result<(), IndexError> {
        self.inner.flush()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn shared(&self) -> bool {
        self.shared
    }
}

fn store(dir: &tempfile::TempDir) -> Result<Arc<Watched>, IndexError> {
    let inner = EdgeStore::open(dir.path(), schema())?;
    inner.upsert(&[
        entity("a", "Alpha"),
        entity("b", "Beta"),
        entity("c", "Gamma"),
    ])?;
    Ok(Arc::new(Watched {
        inner,
        titles_read: AtomicUsize::new(0),
        during_next_read: Mutex::new(None),
        during_next_changes: Mutex::new(None),
        shared: false,
    }))
}

fn cache(store: &Arc<Watched>, budget: usize) -> Result<CachedReads, IndexError> {
    CachedReads::new(store.clone(), budget)?
        .ok_or_else(|| IndexError::Engine("an embedded store gets a cache".into()))
}

fn names(found: &[Option<Arc<Entity>>]) -> Vec<Option<String>> {
    found
        .iter()
        .map(|e| e.as_ref().map(|e| e.name.clone()))
        .collect()
}

/// Bytes the cache counts for holding title `id` (a one-byte id) with no encodings.
fn held_bytes(store: &Watched, id: &str) -> Result<usize, IndexError> {
    let stored = store
        .inner
        .get(&ids(&[id]))?
        .pop()
        .flatten()
        .ok_or_else(|| IndexError::Engine(format!("{id} is stored")))?;
    Ok(footprint(&stored) + 2 * 33 + std::mem::size_of::<Slot>())
}

fn tempdir() -> Result<tempfile::TempDir, IndexError> {
    tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))
}

#[test]
fn a_title_read_once_is_answered_from_memory_after() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    let first = cache.get_selected(&ids(&["a", "b", "nope"]), None)?;
    assert_eq!(
        names(&first),
        [Some("Alpha".into()), Some("Beta".into()), None]
    );
    assert_eq!(store.read(), 3);
    let again = cache.get_selected(&ids(&["b", "a"]), None)?;
    assert_eq!(names(&again), [Some("Beta".into()), Some("Alpha".into())]);
    assert_eq!(store.read(), 3, "both were held");
    // Unknown ids are not held (a client cannot fill memory with them): read again.
    cache.get_selected(&ids(&["nope"]), None)?;
    assert_eq!(store.read(), 4);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 4, 2));
    assert!(stats.bytes > 0 && stats.bytes <= stats.budget);
    Ok(())
}

#[test]
fn a_copy_of_some_vectors_answers_only_reads_of_those() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    let synopsis = ids(&["synopsis"]);
    let read = cache.get_selected(&ids(&["a"]), Some(&synopsis))?;
    let held = read[0]
        .as_ref()
        .map(|e| e.vectors.keys().cloned().collect::<Vec<_>>());
    assert_eq!(
        held,
        Some(synopsis.clone()),
        "only the vector asked for is read"
    );
    cache.get_selected(&ids(&["a"]), Some(&synopsis))?;
    assert_eq!(store.read(), 1);
    // Asking for more than the copy holds goes back to the store; the full copy then answers
    // any selection.
    let all = cache.get_selected(&ids(&["a"]), None)?;
    assert_eq!(all[0].as_ref().map(|e| e.vectors.len()), Some(2));
    assert_eq!(store.read(), 2);
    cache.get_selected(&ids(&["a"]), Some(&ids(&["poster"])))?;
    cache.get_selected(&ids(&["a"]), Some(&[]))?;
    assert_eq!(store.read(), 2);
    Ok(())
}

#[test]
fn a_write_is_seen_by_the_next_read() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    cache.get_selected(&ids(&["a", "b"]), None)?;
    store.upsert(&[entity("a", "Alpha, renamed")])?;
    let read = cache.get_selected(&ids(&["a", "b"]), None)?;
    assert_eq!(
        names(&read),
        [Some("Alpha, renamed".into()), Some("Beta".into())]
    );
    assert_eq!(store.read(), 3, "only the changed title is read again");
    // A new title too.
    store.upsert(&[entity("d", "Delta")])?;
    assert_eq!(
        names(&cache.get_selected(&ids(&["d"]), None)?),
        [Some("Delta".into())]
    );
    Ok(())
}

#[test]
fn a_title_written_while_it_is_read_is_read_again_after() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    *store
        .during_next_read
        .lock()
        .map_err(|_| IndexError::poisoned())? = Some(HookBox(Box::new(|inner: &EdgeStore| {
        inner.upsert(&[entity("a", "Alpha, written during the read")])
    })));
    let read = cache.get_selected(&ids(&["a"]), None)?;
    // That read may answer the version it started with, but not keep it...
    assert_eq!(names(&read), [Some("Alpha".into())]);
    assert_eq!(cache.stats().entries, 0);
    // ...and the next one, begun after the write finished, must not answer it.
    let read = cache.get_selected(&ids(&["a"]), None)?;
    assert_eq!(
        names(&read),
        [Some("Alpha, written during the read".into())]
    );
    assert_eq!(store.read(), 2);
    Ok(())
}

/// Caches a and b, writes `titles` new titles and then a again: the feed holds `titles + 1`
/// changes, a's last. Returns how many titles the next read of a and b took from the store.
fn store_reads_after(titles: usize) -> Result<usize, IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    cache.get_selected(&ids(&["a", "b"]), None)?;
    let batch: Vec<Entity> = (0..titles)
        .map(|i| entity(&format!("new-{i}"), "New"))
        .collect();
    store.upsert(&batch)?;
    store.upsert(&[entity("a", "Alpha 2")])?;
    let before = store.read();
    let read = cache.get_selected(&ids(&["a", "b"]), None)?;
    assert_eq!(names(&read), [Some("Alpha 2".into()), Some("Beta".into())]);
    Ok(store.read() - before)
}

#[test]
fn changes_over_several_feed_pages_are_followed_title_by_title() -> Result<(), IndexError> {
    assert_eq!(
        store_reads_after(CHANGES_PAGE + 100)?,
        1,
        "a, changed on the feed's second page, is read again; b stays"
    );
    Ok(())
}

#[test]
fn many_writes_at_once_empty_the_cache_instead_of_being_followed() -> Result<(), IndexError> {
    assert_eq!(
        store_reads_after(MAX_CHANGES_TO_FOLLOW as usize + 1)?,
        2,
        "everything held was dropped"
    );
    Ok(())
}

#[test]
fn copies_of_different_vectors_of_a_title_are_kept_as_one() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    cache.get_selected(&ids(&["a"]), Some(&ids(&["synopsis"])))?;
    cache.get_selected(&ids(&["a"]), Some(&ids(&["poster"])))?;
    assert_eq!(store.read(), 2);
    let both = cache.get_selected(&ids(&["a"]), Some(&ids(&["poster", "synopsis"])))?;
    assert_eq!(store.read(), 2, "the two copies were merged");
    assert_eq!(both[0].as_ref().map(|e| e.vectors.len()), Some(2));
    assert_eq!(cache.stats().entries, 1);
    // An id asked for twice is read once and answered twice.
    let twice = cache.get_selected(&ids(&["c", "c"]), None)?;
    assert_eq!(names(&twice), [Some("Gamma".into()), Some("Gamma".into())]);
    assert_eq!(store.read(), 3);
    Ok(())
}

#[test]
fn the_clock_stays_bounded_while_titles_are_rewritten() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    for i in 0..1200 {
        store.upsert(&[entity("a", &format!("Alpha {i}"))])?;
        let read = cache.get_selected(&ids(&["a"]), None)?;
        assert_eq!(names(&read), [Some(format!("Alpha {i}"))]);
    }
    let state = cache.lock()?;
    assert_eq!(state.slots.len(), 1);
    assert!(
        state.clock.len() <= 2 * state.slots.len() + 1025,
        "{}",
        state.clock.len()
    );
    Ok(())
}

#[test]
fn the_budget_bounds_what_is_held_and_recently_read_titles_stay() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let one = held_bytes(&store, "a")?;
    // Room for two titles, not three.
    let cache = cache(&store, 2 * one + one / 2)?;
    cache.get_selected(&ids(&["a", "b"]), None)?;
    cache.get_selected(&ids(&["a"]), None)?; // a is read again: b goes first
    cache.get_selected(&ids(&["c"]), None)?;
    let stats = cache.stats();
    assert_eq!(stats.entries, 2);
    assert!(stats.bytes <= stats.budget);
    let before = store.read();
    cache.get_selected(&ids(&["a", "c"]), None)?;
    assert_eq!(store.read(), before, "a and c are held");
    cache.get_selected(&ids(&["b"]), None)?;
    assert_eq!(store.read(), before + 1, "b was evicted");
    // A title bigger than the whole budget is never held.
    let tiny = self::cache(&store, 16)?;
    tiny.get_selected(&ids(&["a"]), None)?;
    assert_eq!(tiny.stats().entries, 0);
    Ok(())
}

#[test]
fn no_cache_without_a_budget_or_for_a_store_other_processes_write() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    assert!(CachedReads::new(store, 0)?.is_none());
    let dir = tempdir()?;
    let inner = EdgeStore::open(dir.path(), schema())?;
    let shared = Arc::new(Watched {
        inner,
        titles_read: AtomicUsize::new(0),
        during_next_read: Mutex::new(None),
        during_next_changes: Mutex::new(None),
        shared: true,
    });
    assert!(CachedReads::new(shared, 1 << 20)?.is_none());
    Ok(())
}

#[test]
fn a_call_arriving_while_another_catches_up_reads_the_store_instead_of_waiting()
-> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = Arc::new(cache(&store, 1 << 20)?);
    cache.get_selected(&ids(&["a", "b"]), None)?;
    store.upsert(&[entity("a", "Alpha 2")])?;
    // The second call runs while the first is inside its change-feed read; were it to wait for
    // the first to finish catching up, this would deadlock rather than pass.
    let answered = Arc::new(Mutex::new(None));
    let (second, seen_by_second) = (cache.clone(), answered.clone());
    *store
        .during_next_changes
        .lock()
        .map_err(|_| IndexError::poisoned())? = Some(HookBox(Box::new(move |_: &EdgeStore| {
        let read = second.get_selected(&ids(&["a", "b"]), None)?;
        *seen_by_second.lock().map_err(|_| IndexError::poisoned())? = Some(names(&read));
        Ok(())
    })));
    let before = store.read();
    let first = cache.get_selected(&ids(&["a"]), None)?;
    assert_eq!(names(&first), [Some("Alpha 2".into())]);
    let second = answered.lock().map_err(|_| IndexError::poisoned())?.take();
    assert_eq!(
        second,
        Some(vec![Some("Alpha 2".into()), Some("Beta".into())]),
        "the second call answered current titles, from the store"
    );
    assert_eq!(
        store.read(),
        before + 3,
        "two read by the second call, a by the first"
    );
    Ok(())
}

/// An encoder writing the title's name, counting its calls.
fn name_encoder(calls: &AtomicUsize) -> impl Fn(&Entity) -> Vec<u8> + '_ {
    move |e: &Entity| {
        calls.fetch_add(1, Ordering::SeqCst);
        e.name.as_bytes().to_vec()
    }
}

fn texts(found: &[Option<Encoded>]) -> Vec<Option<String>> {
    found
        .iter()
        .map(|b| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
        .collect()
}

#[test]
fn a_title_is_encoded_once_per_form_and_its_bytes_handed_out_after() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    let calls = AtomicUsize::new(0);
    let encode = name_encoder(&calls);
    let first = cache.get_encoded(&ids(&["a", "nope", "b"]), None, "names", &encode)?;
    assert_eq!(
        texts(&first),
        [Some("Alpha".into()), None, Some("Beta".into())]
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "an unknown id is not encoded"
    );
    let bytes_before = cache.stats().bytes;
    let again = cache.get_encoded(&ids(&["b", "a"]), None, "names", &encode)?;
    assert_eq!(texts(&again), [Some("Beta".into()), Some("Alpha".into())]);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "both were kept encoded");
    assert_eq!(store.read(), 3, "nor read again");
    // The very bytes kept, not a copy.
    let kept = (first[0].as_ref(), again[1].as_ref());
    assert!(matches!(kept, (Some(x), Some(y)) if x.as_ptr() == y.as_ptr()));
    // Another form is another encoding, kept beside the first and counted in the budget.
    cache.get_encoded(&ids(&["a"]), None, "other", &encode)?;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stats = cache.stats();
    assert!(stats.bytes > bytes_before, "{stats:?}");
    assert_eq!(stats.entries, 2);
    // A copy holding only some vectors does not answer for all of them, encoded or not.
    let synopsis = ids(&["synopsis"]);
    cache.get_encoded(&ids(&["c"]), Some(&synopsis), "names", &encode)?;
    cache.get_encoded(&ids(&["c"]), None, "names", &encode)?;
    assert_eq!(store.read(), 5);
    Ok(())
}

#[test]
fn a_write_drops_the_encoding_with_the_title() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    let calls = AtomicUsize::new(0);
    let encode = name_encoder(&calls);
    cache.get_encoded(&ids(&["a", "b"]), None, "names", &encode)?;
    store.upsert(&[entity("a", "Alpha, renamed")])?;
    let read = cache.get_encoded(&ids(&["a", "b"]), None, "names", &encode)?;
    assert_eq!(
        texts(&read),
        [Some("Alpha, renamed".into()), Some("Beta".into())]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "only a encoded again");
    Ok(())
}

#[test]
fn a_third_form_replaces_the_oldest_encoding() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let cache = cache(&store, 1 << 20)?;
    let calls = AtomicUsize::new(0);
    let encode = name_encoder(&calls);
    let a = ids(&["a"]);
    for form in ["x", "y", "x", "y"] {
        cache.get_encoded(&a, None, form, &encode)?;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "two forms are kept side by side"
    );
    let with_two = cache.stats().bytes;
    cache.get_encoded(&a, None, "z", &encode)?;
    assert_eq!(cache.stats().bytes, with_two, "z took x's place");
    cache.get_encoded(&a, None, "y", &encode)?;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    cache.get_encoded(&a, None, "x", &encode)?;
    assert_eq!(calls.load(Ordering::SeqCst), 4, "x was dropped");
    Ok(())
}

#[test]
fn an_encoding_that_does_not_fit_beside_its_title_is_not_kept() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let one = held_bytes(&store, "a")?;
    let cache = cache(&store, one + 1000)?;
    let calls = AtomicUsize::new(0);
    let big = |_: &Entity| {
        calls.fetch_add(1, Ordering::SeqCst);
        vec![7u8; 4000]
    };
    for _ in 0..2 {
        let read = cache.get_encoded(&ids(&["a"]), None, "big", &big)?;
        assert_eq!(read[0].as_ref().map(|b| b.len()), Some(4000));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "encoded at every call");
    let stats = cache.stats();
    assert_eq!(stats.entries, 1, "the title itself is still held");
    assert!(stats.bytes <= stats.budget);
    assert_eq!(store.read(), 1);
    Ok(())
}

#[test]
fn a_third_form_takes_the_oldest_ones_room_in_a_full_budget() -> Result<(), IndexError> {
    let dir = tempdir()?;
    let store = store(&dir)?;
    let one = held_bytes(&store, "a")?;
    let each = encoding_footprint("x", &[0u8; 100]);
    // Room for the title and two encodings, exactly.
    let cache = cache(&store, one + 2 * each)?;
    let calls = AtomicUsize::new(0);
    let encode = |_: &Entity| {
        calls.fetch_add(1, Ordering::SeqCst);
        vec![0u8; 100]
    };
    let a = ids(&["a"]);
    for form in ["x", "y", "z", "z", "y"] {
        cache.get_encoded(&a, None, form, &encode)?;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "z was kept in x's place");
    let stats = cache.stats();
    assert_eq!((stats.entries, stats.bytes), (1, one + 2 * each));
    Ok(())
}
