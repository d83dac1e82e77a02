//! Compiled forms of stored definitions (pipelines, outgoing schemas), kept by
//! name and by the version they were compiled from, so that a definition is
//! compiled once per change rather than on every use.
//!
//! The version is the definition's `updated_at`: a definition put again gets a
//! new one and is compiled again on its next use; an unchanged one never is.
//! Definitions are unbounded input (anyone with the admin token can put more),
//! so a cache keeps at most [`MAX_COMPILED`] entries and, when full, drops the
//! one used least recently; a dropped definition is compiled again when next used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::domain::Timestamp;

/// Most compiled definitions one cache keeps (per process: one cache for
/// pipelines, one for outgoing schemas).
pub const MAX_COMPILED: usize = 1024;

/// Compiled values by name, each with the version it was compiled from.
pub struct CompileCache<V> {
    capacity: usize,
    entries: Mutex<Entries<V>>,
}

struct Entries<V> {
    by_name: HashMap<String, Entry<V>>,
    /// Counts uses; an entry's `last_used` is the count at its latest use.
    uses: u64,
}

struct Entry<V> {
    version: Timestamp,
    value: Arc<V>,
    last_used: u64,
}

impl<V> Default for CompileCache<V> {
    fn default() -> Self {
        Self::with_capacity(MAX_COMPILED)
    }
}

impl<V> CompileCache<V> {
    /// A cache of at most `capacity` entries (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        CompileCache {
            capacity: capacity.max(1),
            entries: Mutex::new(Entries {
                by_name: HashMap::new(),
                uses: 0,
            }),
        }
    }

    /// The value compiled for `name` at `version`, compiling it with `compile`
    /// when the cache holds none or one of another version. A failed compile is
    /// not kept, so the next use tries again.
    ///
    /// `compile` runs without the lock, so a slow compile does not hold up the
    /// other names; two callers missing the same entry at once may both compile
    /// it, and the later one is kept.
    pub fn get_or_compile<E>(
        &self,
        name: &str,
        version: Timestamp,
        compile: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        if let Some(value) = self.lock().get(name, version) {
            return Ok(value);
        }
        let value = Arc::new(compile()?);
        self.lock()
            .insert(name, version, value.clone(), self.capacity);
        Ok(value)
    }

    /// Nothing here panics while holding the lock, but a poisoned cache would
    /// only ever cost a recompile, never a wrong answer: keep serving.
    fn lock(&self) -> MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V> Entries<V> {
    fn get(&mut self, name: &str, version: Timestamp) -> Option<Arc<V>> {
        self.uses += 1;
        let uses = self.uses;
        let entry = self.by_name.get_mut(name)?;
        if entry.version != version {
            return None;
        }
        entry.last_used = uses;
        Some(entry.value.clone())
    }

    fn insert(&mut self, name: &str, version: Timestamp, value: Arc<V>, capacity: usize) {
        if self.by_name.len() >= capacity && !self.by_name.contains_key(name) {
            // A scan of at most `capacity` entries, done only after a compile,
            // which costs far more.
            let least_recent = self
                .by_name
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(name, _)| name.clone());
            if let Some(least_recent) = least_recent {
                self.by_name.remove(&least_recent);
            }
        }
        self.uses += 1;
        let entry = Entry {
            version,
            value,
            last_used: self.uses,
        };
        self.by_name.insert(name.to_owned(), entry);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;

    use super::*;

    /// Looks `name` up at `version` and says whether it had to be compiled.
    fn compiled(cache: &CompileCache<String>, name: &str, version: i64) -> bool {
        let ran = Cell::new(false);
        let value = cache
            .get_or_compile(name, Timestamp(version), || {
                ran.set(true);
                Ok::<_, Infallible>(format!("{name}@{version}"))
            })
            .unwrap();
        assert_eq!(*value, format!("{name}@{version}"));
        ran.get()
    }

    fn len(cache: &CompileCache<String>) -> usize {
        cache.lock().by_name.len()
    }

    #[test]
    fn an_unchanged_definition_is_compiled_once() {
        let cache = CompileCache::default();
        assert!(compiled(&cache, "a", 1));
        assert!(!compiled(&cache, "a", 1));
        assert!(!compiled(&cache, "a", 1));
    }

    #[test]
    fn a_new_version_is_compiled_again_and_replaces_the_old() {
        let cache = CompileCache::default();
        assert!(compiled(&cache, "a", 1));
        assert!(compiled(&cache, "a", 2));
        assert!(!compiled(&cache, "a", 2));
        assert_eq!(len(&cache), 1);
        // An older version read by a slower caller is not served from the newer entry.
        assert!(compiled(&cache, "a", 1));
    }

    #[test]
    fn names_are_kept_apart() {
        let cache = CompileCache::default();
        assert!(compiled(&cache, "a", 1));
        assert!(compiled(&cache, "b", 1));
        assert!(!compiled(&cache, "a", 1));
        assert!(!compiled(&cache, "b", 1));
    }

    #[test]
    fn a_failed_compile_is_not_kept() {
        let cache = CompileCache::<String>::default();
        let failed = cache.get_or_compile("a", Timestamp(1), || Err("does not compile"));
        assert_eq!(failed.unwrap_err(), "does not compile");
        assert_eq!(len(&cache), 0);
        assert!(compiled(&cache, "a", 1));
    }

    #[test]
    fn at_the_bound_the_least_recently_used_is_dropped() {
        let cache = CompileCache::default();
        for i in 0..MAX_COMPILED {
            assert!(compiled(&cache, &format!("p{i}"), 1));
        }
        // Full, nothing was dropped.
        assert_eq!(len(&cache), MAX_COMPILED);
        for i in 0..MAX_COMPILED {
            assert!(!compiled(&cache, &format!("p{i}"), 1), "p{i} was dropped");
        }
        // p0 is used again, so p1 is now the least recently used.
        assert!(!compiled(&cache, "p0", 1));
        assert!(compiled(&cache, "one-more", 1));
        assert_eq!(len(&cache), MAX_COMPILED);
        assert!(!compiled(&cache, "p0", 1));
        assert!(!compiled(&cache, "one-more", 1));
        assert!(!compiled(&cache, &format!("p{}", MAX_COMPILED - 1), 1));
        assert!(compiled(&cache, "p1", 1));
        assert_eq!(len(&cache), MAX_COMPILED);
    }

    #[test]
    fn a_new_version_at_the_bound_drops_nothing_else() {
        let cache = CompileCache::with_capacity(2);
        assert!(compiled(&cache, "a", 1));
        assert!(compiled(&cache, "b", 1));
        assert!(compiled(&cache, "a", 2));
        assert!(!compiled(&cache, "b", 1));
        assert!(!compiled(&cache, "a", 2));
    }

    #[test]
    fn a_poisoned_cache_keeps_serving() {
        let cache = Arc::new(CompileCache::default());
        assert!(compiled(&cache, "a", 1));
        let holder = cache.clone();
        let panicked = std::thread::spawn(move || {
            let _held = holder.entries.lock();
            panic!("poisons the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(cache.entries.is_poisoned());
        assert!(!compiled(&cache, "a", 1));
        assert!(compiled(&cache, "b", 1));
    }
}
