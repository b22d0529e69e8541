//! Keyed state for cumulative queries (Spark's `updateStateByKey`): one row of
//! partial aggregate state per key, updated only for the keys a batch touches.
//!
//! State rows live in append-only Arrow chunks. An index maps each key (its group
//! columns, row-encoded) to the chunk and row that hold its current state; an
//! update appends the key's new state row and marks the old one dead. When dead
//! rows outnumber live ones the live rows are compacted into one chunk, so the
//! work per batch is proportional to the batch (amortized), not to the state.
//! Keys not updated for a TTL are dropped through a queue of update times, again
//! without scanning the state. Pure: no I/O, no plans (merging states is
//! `exec::cumulative`'s job).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, interleave, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::state::huge::HugePages;
use crate::time::BatchTime;

/// A row-encoded key. Short keys (a BIGINT is 9 bytes, a short string a few
/// more) are stored inline: no allocation per key, and no pointer to chase on
/// every probe of a state with millions of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Inline(u8, [u8; 22]),
    Heap(Box<[u8]>),
}

impl std::hash::Hash for Key {
    /// Only the key's bytes (not the unused inline tail): a BIGINT key is 9
    /// bytes, on the hasher's short path.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Key::Inline(len, bytes) => state.write(&bytes[..*len as usize]),
            Key::Heap(bytes) => state.write(bytes),
        }
    }
}

impl Key {
    pub fn new(bytes: &[u8]) -> Key {
        if bytes.len() <= 22 {
            let mut inline = [0u8; 22];
            inline[..bytes.len()].copy_from_slice(bytes);
            Key::Inline(bytes.len() as u8, inline)
        } else {
            Key::Heap(Box::from(bytes))
        }
    }
}

/// A key, where its current state row is, and when it was last updated.
/// (40 bytes: with millions of keys the index is most of the memory touched.)
#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    chunk: u32,
    row: u32,
    updated: BatchTime,
}

/// What [`KeyedState::lookup`] found: for each key it was given, whether the
/// index holds it and in which bucket.
pub struct Located {
    keys: HashTable<LocatedKey>,
}

struct LocatedKey {
    key: Key,
    hash: u64,
    /// The key's first row in the looked-up batch.
    row: u32,
    bucket: Option<usize>,
}

/// Marks state row `row` of chunk `chunk` dead.
fn kill(chunks: &mut [Chunk], dead: &mut usize, chunk: u32, row: u32) {
    if let Some(c) = chunks.get_mut(chunk as usize) {
        if c.alive[row as usize] {
            c.alive[row as usize] = false;
            c.live -= 1;
            *dead += 1;
        }
    }
}

struct Chunk {
    batch: RecordBatch,
    alive: Vec<bool>,
    live: usize,
}

pub struct KeyedState {
    schema: SchemaRef,
    /// Row encoder of the key columns (the first `key_columns` of the schema);
    /// None when the query has no GROUP BY (one global key).
    converter: Option<RowConverter>,
    key_columns: usize,
    /// Key -> entry, hashed with foldhash (SipHash costs more than the probe).
    index: HashTable<Entry, HugePages>,
    hasher: DefaultHashBuilder,
    chunks: Vec<Chunk>,
    dead: usize,
    /// Keys by update time, oldest first, for TTL expiry (only kept with a TTL).
    updates: VecDeque<(BatchTime, Vec<Key>)>,
    /// Keys in `updates`, stale ones included (a key updated again stays queued
    /// under its older time until the queue is rebuilt).
    queued: usize,
    track_updates: bool,
}

impl KeyedState {
    /// `schema`: key columns first, then the accumulator state columns.
    pub fn new(schema: SchemaRef, key_columns: usize, ttl: bool) -> Result<KeyedState, ArrowError> {
        let converter = if key_columns == 0 {
            None
        } else {
            let fields = schema
                .fields()
                .iter()
                .take(key_columns)
                .map(|f| SortField::new(f.data_type().clone()))
                .collect();
            Some(RowConverter::new(fields)?)
        };
        Ok(KeyedState {
            schema,
            converter,
            key_columns,
            index: HashTable::new_in(HugePages),
            hasher: DefaultHashBuilder::default(),
            chunks: Vec::new(),
            dead: 0,
            updates: VecDeque::new(),
            queued: 0,
            track_updates: ttl,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Arrow bytes held by the chunks (dead rows included until compaction).
    pub fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.batch.get_array_memory_size())
            .sum()
    }

    /// The row-encoded key of every row of `batch`.
    pub fn keys(&self, batch: &RecordBatch) -> Result<Vec<Key>, ArrowError> {
        match &self.converter {
            None => Ok(vec![Key::new(&[]); batch.num_rows()]),
            Some(c) => {
                let columns: Vec<ArrayRef> = batch.columns()[..self.key_columns].to_vec();
                let rows = c.convert_columns(&columns)?;
                Ok(rows.iter().map(|r| Key::new(r.as_ref())).collect())
            }
        }
    }

    /// The current state rows of those keys of `batch` (a batch of the state
    /// schema; `keys` are its rows' keys) that are held, each key once (a key may
    /// repeat, e.g. once per partition), and where each key is in the index, for
    /// the [`KeyedState::upsert`] that follows. The key columns are taken from
    /// `batch`, the state columns from the state.
    pub fn lookup(
        &self,
        batch: &RecordBatch,
        keys: &[Key],
    ) -> Result<(Option<RecordBatch>, Located), ArrowError> {
        let watch = crate::clock::Stopwatch::start();
        let mut located = Located {
            keys: HashTable::with_capacity(keys.len()),
        };
        // Distinct keys in order of first appearance (hash, row).
        let mut distinct = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let hash = self.hasher.hash_one(key);
            if let hashbrown::hash_table::Entry::Vacant(v) =
                located.keys.entry(hash, |l| l.key == *key, |l| l.hash)
            {
                v.insert(LocatedKey {
                    key: key.clone(),
                    hash,
                    row: i as u32,
                    bucket: None,
                });
                distinct.push((hash, i as u32));
            }
        }
        // A tight loop of independent probes: their cache misses overlap.
        let buckets: Vec<Option<usize>> = distinct
            .iter()
            .map(|&(hash, i)| {
                let key = &keys[i as usize];
                self.index.find_bucket_index(hash, |e| e.key == *key)
            })
            .collect();
        let mut rows = Vec::with_capacity(distinct.len());
        let mut at = Vec::with_capacity(distinct.len());
        for (&(hash, i), bucket) in distinct.iter().zip(buckets) {
            let Some(e) = bucket.and_then(|b| self.index.get_bucket(b)) else {
                continue;
            };
            rows.push(i);
            at.push((e.chunk as usize, e.row as usize));
            if let Some(l) = located.keys.find_mut(hash, |l| l.row == i) {
                l.bucket = bucket;
            }
        }
        if at.is_empty() {
            return Ok((None, located));
        }
        let probe_us = watch.elapsed_us();
        let rows = UInt32Array::from(rows);
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for c in &batch.columns()[..self.key_columns] {
            columns.push(take(c, &rows, None)?);
        }
        for col in self.key_columns..self.schema.fields().len() {
            let arrays: Vec<&dyn Array> = self
                .chunks
                .iter()
                .map(|c| c.batch.column(col).as_ref())
                .collect();
            columns.push(interleave(&arrays, &at)?);
        }
        tracing::debug!(
            probe_us,
            gather_us = watch.elapsed_us() - probe_us,
            "lookup"
        );
        let found = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok((Some(found), located))
    }

    /// Makes `merged` (one row per key, keys `keys`) the current state of its keys.
    /// `located`: what the lookup of these keys found, so that their entries are
    /// updated without probing the index again (None: probe).
    pub fn upsert(
        &mut self,
        merged: RecordBatch,
        keys: Vec<Key>,
        t: BatchTime,
        located: Option<&Located>,
    ) -> Result<(), ArrowError> {
        if merged.num_rows() == 0 {
            return Ok(());
        }
        let chunk = self.chunks.len() as u32;
        let hasher = &self.hasher;
        let watch = crate::clock::Stopwatch::start();
        // Existing keys first: inserting may move the table, and with it the
        // buckets the lookup found.
        let mut new_keys = Vec::new();
        for (row, key) in keys.iter().enumerate() {
            let row = row as u32;
            let hash = hasher.hash_one(key);
            let known = located.and_then(|l| l.keys.find(hash, |l| l.key == *key));
            let bucket = match known {
                Some(LocatedKey {
                    bucket: Some(b), ..
                }) if self.index.get_bucket(*b).is_some_and(|e| e.key == *key) => Some(*b),
                Some(LocatedKey { bucket: None, .. }) => None,
                _ => self.index.find_bucket_index(hash, |e| e.key == *key),
            };
            match bucket.and_then(|b| self.index.get_bucket_mut(b)) {
                Some(e) => {
                    kill(&mut self.chunks, &mut self.dead, e.chunk, e.row);
                    (e.chunk, e.row, e.updated) = (chunk, row, t);
                }
                None => new_keys.push((hash, row)),
            }
        }
        for (hash, row) in new_keys {
            let key = &keys[row as usize];
            match self
                .index
                .entry(hash, |e| e.key == *key, |e| hasher.hash_one(&e.key))
            {
                hashbrown::hash_table::Entry::Occupied(mut e) => {
                    let e = e.get_mut();
                    kill(&mut self.chunks, &mut self.dead, e.chunk, e.row);
                    (e.chunk, e.row, e.updated) = (chunk, row, t);
                }
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(Entry {
                        key: key.clone(),
                        chunk,
                        row,
                        updated: t,
                    });
                }
            }
        }
        tracing::debug!(index_us = watch.elapsed_us(), "upsert");
        let rows = merged.num_rows();
        self.chunks.push(Chunk {
            batch: merged,
            alive: vec![true; rows],
            live: rows,
        });
        if self.track_updates {
            self.queued += keys.len();
            self.updates.push_back((t, keys));
            // Stale entries would make the queue grow with the update rate × TTL
            // rather than with the keys: rebuild it from the index when they
            // dominate (amortized O(1) per update).
            if self.queued > 2 * self.index.len().max(1024) {
                self.rebuild_updates();
            }
        }
        self.maybe_compact()
    }

    /// Drops every key last updated at or before `cutoff`; returns how many.
    pub fn expire(&mut self, cutoff: BatchTime) -> Result<usize, ArrowError> {
        let mut dropped = 0;
        while self.updates.front().is_some_and(|(t, _)| *t <= cutoff) {
            let Some((t, keys)) = self.updates.pop_front() else {
                break;
            };
            self.queued -= keys.len();
            for key in keys {
                let hash = self.hasher.hash_one(&key);
                if let Ok(found) = self.index.find_entry(hash, |e| e.key == key) {
                    if found.get().updated == t {
                        let (e, _) = found.remove();
                        kill(&mut self.chunks, &mut self.dead, e.chunk, e.row);
                        dropped += 1;
                    }
                }
            }
        }
        self.maybe_compact()?;
        Ok(dropped)
    }

    /// Every live state row.
    pub fn all(&self) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut out = Vec::new();
        for c in &self.chunks {
            if c.live == c.alive.len() {
                out.push(c.batch.clone());
            } else if c.live > 0 {
                let mask = BooleanArray::from(c.alive.clone());
                out.push(filter_record_batch(&c.batch, &mask)?);
            }
        }
        Ok(out)
    }

    /// The TTL queue rebuilt from the index: each key once, under its last update.
    fn rebuild_updates(&mut self) {
        let mut by_time: std::collections::BTreeMap<i64, Vec<Key>> = Default::default();
        for e in self.index.iter() {
            by_time
                .entry(e.updated.millis())
                .or_default()
                .push(e.key.clone());
        }
        self.queued = self.index.len();
        self.updates = by_time
            .into_iter()
            .map(|(t, keys)| (BatchTime(t), keys))
            .collect();
    }

    /// Rewrites the live rows into one chunk when dead rows outnumber live ones
    /// (and there is something worth the copy).
    fn maybe_compact(&mut self) -> Result<(), ArrowError> {
        let live = self.index.len();
        if self.dead <= live.max(1024) && self.chunks.len() <= 4096 {
            return Ok(());
        }
        let live_batches = self.all()?;
        let compacted = concat_batches(&self.schema, &live_batches)?;
        // Re-point the index at the compacted rows: chunk order is preserved, so
        // walk the old chunks' live rows in order.
        let mut next = 0u32;
        let mut new_rows: Vec<Vec<u32>> = Vec::with_capacity(self.chunks.len());
        for c in &self.chunks {
            new_rows.push(
                c.alive
                    .iter()
                    .map(|alive| {
                        let at = next;
                        next += u32::from(*alive);
                        at
                    })
                    .collect(),
            );
        }
        for e in self.index.iter_mut() {
            e.row = new_rows[e.chunk as usize][e.row as usize];
            e.chunk = 0;
        }
        let rows = compacted.num_rows();
        self.chunks = vec![Chunk {
            batch: compacted,
            alive: vec![true; rows],
            live: rows,
        }];
        self.dead = 0;
        Ok(())
    }
}

/// The bookkeeping column of a keyed-state checkpoint file: when each key was
/// last updated (ms).
pub const UPDATED: &str = "_sluice_updated_ms";

impl KeyedState {
    /// Every live row with its last update time, for a checkpoint: the state
    /// schema followed by [`UPDATED`].
    pub fn snapshot(&self) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field};
        let extra = || Field::new(UPDATED, DataType::Int64, false);
        let schema = crate::state::checkpoint_io::extend_schema(&self.schema, vec![extra()]);
        let mut updated: Vec<Vec<i64>> =
            self.chunks.iter().map(|c| vec![0; c.alive.len()]).collect();
        for e in self.index.iter() {
            updated[e.chunk as usize][e.row as usize] = e.updated.millis();
        }
        let mut out = Vec::new();
        for (c, times) in self.chunks.iter().zip(updated) {
            if c.live == 0 {
                continue;
            }
            let mask = BooleanArray::from(c.alive.clone());
            let rows = filter_record_batch(&c.batch, &mask)?;
            let times: Vec<i64> = times
                .into_iter()
                .zip(&c.alive)
                .filter(|(_, a)| **a)
                .map(|(t, _)| t)
                .collect();
            out.push(crate::state::checkpoint_io::with_columns(
                &rows,
                vec![(extra(), Arc::new(Int64Array::from(times)))],
            )?);
        }
        Ok((schema, out))
    }

    /// Loads rows written by [`KeyedState::snapshot`] into an empty state.
    ///
    /// The index is built partition by partition: every key is hashed first and
    /// put in one of up to 4096 partitions by the high bits of the bucket its
    /// hash falls in, then the partitions are inserted in order. Each partition's
    /// inserts touch one small region of the table, so they hit the cache instead
    /// of missing it (and the TLB) on every key; for 10 M keys that is most of
    /// the restore time.
    pub fn restore(&mut self, batches: Vec<RecordBatch>) -> Result<(), ArrowError> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Int64Type;
        struct Pending {
            hash: u64,
            key: Key,
            updated: i64,
            chunk: u32,
            row: u32,
        }
        let watch = crate::clock::Stopwatch::start();
        let width = self.schema.fields().len();
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        // hashbrown picks the bucket from the hash's low bits, modulo its
        // power-of-two bucket count (capacity × 8/7, rounded up).
        let bucket_bits = (total.max(8) * 8 / 7).next_power_of_two().trailing_zeros();
        // Partitions of at most 4096 buckets (160 KiB of table, in L2), at most 4096 of them.
        let part_bits = bucket_bits.saturating_sub(12).min(12);
        let bucket_mask = (1u64 << bucket_bits) - 1;
        // The state rows become the chunks; their keys and update times are
        // hashed and partitioned by as many threads as there are cores.
        let mut work = Vec::with_capacity(batches.len());
        for b in batches {
            if b.num_columns() != width + 1 {
                return Err(ArrowError::SchemaError(format!(
                    "keyed state file has {} columns, the query's state has {} (+1)",
                    b.num_columns(),
                    width
                )));
            }
            let (rows, extra) =
                crate::state::checkpoint_io::split_columns(&b, &self.schema, width)?;
            let chunk = self.chunks.len() as u32;
            let n = rows.num_rows();
            self.chunks.push(Chunk {
                batch: rows,
                alive: vec![true; n],
                live: n,
            });
            work.push((chunk, extra[0].as_primitive::<Int64Type>().clone()));
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
            .min(work.len().max(1));
        let per_thread = total / threads + 1;
        let this = &*self;
        let partition = |share: &[(u32, datafusion::arrow::array::Int64Array)]| {
            let mut parts: Vec<Vec<Pending>> = (0..1usize << part_bits)
                .map(|_| Vec::with_capacity((per_thread >> part_bits) * 5 / 4 + 1))
                .collect();
            for (chunk, times) in share {
                let rows = &this.chunks[*chunk as usize].batch;
                for (row, key) in this.keys(rows)?.into_iter().enumerate() {
                    let hash = this.hasher.hash_one(&key);
                    let part = ((hash & bucket_mask) >> (bucket_bits - part_bits)) as usize;
                    parts[part].push(Pending {
                        hash,
                        key,
                        updated: times.value(row),
                        chunk: *chunk,
                        row: row as u32,
                    });
                }
            }
            Ok::<_, ArrowError>(parts)
        };
        let shares: Vec<&[(u32, datafusion::arrow::array::Int64Array)]> =
            work.chunks(work.len().div_ceil(threads).max(1)).collect();
        let mut partitioned: Vec<Vec<Vec<Pending>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .iter()
                .map(|share| scope.spawn(|| partition(share)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ArrowError::ComputeError(
                            "a thread restoring keyed state panicked".into(),
                        ))
                    })
                })
                .collect::<Result<_, _>>()
        })?;
        let hashed_us = watch.elapsed_us();
        let hasher = &self.hasher;
        self.index.reserve(total, |e| hasher.hash_one(&e.key));
        // Partition p of every thread, in order of p.
        let threads = partitioned.len();
        for (p, thread) in (0..1usize << part_bits).flat_map(|p| (0..threads).map(move |t| (p, t)))
        {
            for Pending {
                hash,
                key,
                updated,
                chunk,
                row,
            } in std::mem::take(&mut partitioned[thread][p])
            {
                match self
                    .index
                    .entry(hash, |e| e.key == key, |e| hasher.hash_one(&e.key))
                {
                    hashbrown::hash_table::Entry::Occupied(_) => {
                        return Err(ArrowError::InvalidArgumentError(
                            "keyed state file holds a key twice".into(),
                        ))
                    }
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        v.insert(Entry {
                            key,
                            chunk,
                            row,
                            updated: BatchTime(updated),
                        });
                    }
                }
            }
        }
        if self.track_updates {
            self.rebuild_updates();
        }
        tracing::debug!(
            keys = total,
            hashed_us,
            indexed_us = watch.elapsed_us(),
            "keyed state restored"
        );
        Ok(())
    }
}

/// A batch of `schema` with no rows.
pub fn empty(schema: &SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(Arc::clone(schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn contents(s: &KeyedState) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = s
            .all()
            .unwrap()
            .iter()
            .flat_map(|b| {
                let k = b.column(0).as_string::<i32>().clone();
                let n = b.column(1).as_primitive::<Int64Type>().clone();
                (0..b.num_rows()).map(move |i| (k.value(i).to_string(), n.value(i)))
            })
            .collect();
        out.sort();
        out
    }

    fn put(s: &mut KeyedState, rows: &[(&str, i64)], t: i64) {
        let b = batch(rows);
        let keys = s.keys(&b).unwrap();
        s.upsert(b, keys, BatchTime(t), None).unwrap();
    }

    #[test]
    fn upserts_replace_a_key_s_row_and_lookup_finds_current_rows() {
        let mut s = KeyedState::new(schema(), 1, false).unwrap();
        put(&mut s, &[("a", 1), ("b", 2)], 1000);
        put(&mut s, &[("a", 5)], 2000);
        assert_eq!(contents(&s), [("a".into(), 5), ("b".into(), 2)]);
        let probe = batch(&[("b", 0), ("zz", 0), ("a", 0), ("b", 0)]);
        let found = s
            .lookup(&probe, &s.keys(&probe).unwrap())
            .unwrap()
            .0
            .unwrap();
        assert_eq!(
            found
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            vec![2, 5]
        );
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn expiry_drops_keys_not_updated_since_the_cutoff() {
        let mut s = KeyedState::new(schema(), 1, true).unwrap();
        put(&mut s, &[("a", 1), ("b", 1)], 1000);
        put(&mut s, &[("a", 2)], 2000);
        assert_eq!(s.expire(BatchTime(1000)).unwrap(), 1);
        assert_eq!(contents(&s), [("a".into(), 2)]);
        assert_eq!(s.expire(BatchTime(2000)).unwrap(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn the_ttl_queue_grows_with_the_keys_not_with_the_updates() {
        let mut s = KeyedState::new(schema(), 1, true).unwrap();
        put(&mut s, &[("old", 1)], 1000);
        for t in 2..5000 {
            put(&mut s, &[("hot", t)], 1000 * t);
        }
        assert!(s.queued <= 2048, "{} keys queued for 2 keys", s.queued);
        // Expiry still sees each key's last update.
        assert_eq!(s.expire(BatchTime(1000)).unwrap(), 1);
        assert_eq!(s.expire(BatchTime(4_998_000)).unwrap(), 0);
        assert_eq!(contents(&s), [("hot".into(), 4999)]);
        assert_eq!(s.expire(BatchTime(4_999_000)).unwrap(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn compaction_keeps_every_live_row_and_the_index_right() {
        let mut s = KeyedState::new(schema(), 1, false).unwrap();
        let names: Vec<String> = (0..3000).map(|i| format!("k{i}")).collect();
        for round in 0..3 {
            let rows: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), round)).collect();
            put(&mut s, &rows, 1000 * (round + 1));
        }
        // 6000 dead rows against 3000 live: compacted into one chunk.
        assert_eq!(s.chunks.len(), 1);
        assert_eq!(s.len(), 3000);
        let probe = batch(&[("k2999", 0), ("k0", 0)]);
        let found = s
            .lookup(&probe, &s.keys(&probe).unwrap())
            .unwrap()
            .0
            .unwrap();
        assert_eq!(found.column(0).as_string::<i32>().value(0), "k2999");
        assert_eq!(
            found
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            vec![2, 2]
        );
    }

    #[test]
    fn snapshot_and_restore_round_trip_with_update_times() {
        let mut s = KeyedState::new(schema(), 1, true).unwrap();
        put(&mut s, &[("a", 1), ("b", 2)], 1000);
        put(&mut s, &[("a", 5)], 2000);
        let (_, batches) = s.snapshot().unwrap();
        let mut r = KeyedState::new(schema(), 1, true).unwrap();
        r.restore(batches).unwrap();
        assert_eq!(contents(&r), contents(&s));
        // Update times survive: b (1000) expires before a (2000).
        assert_eq!(r.expire(BatchTime(1000)).unwrap(), 1);
        assert_eq!(contents(&r), [("a".into(), 5)]);
    }

    #[test]
    fn no_group_by_is_one_global_key() {
        let s0 = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let mut s = KeyedState::new(s0.clone(), 0, false).unwrap();
        let b =
            RecordBatch::try_new(s0.clone(), vec![Arc::new(Int64Array::from(vec![3]))]).unwrap();
        let keys = s.keys(&b).unwrap();
        s.upsert(b.clone(), keys.clone(), BatchTime(1000), None)
            .unwrap();
        s.upsert(b, keys, BatchTime(2000), None).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.all().unwrap().iter().map(|b| b.num_rows()).sum::<usize>(),
            1
        );
    }
}
