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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, interleave_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::time::BatchTime;

/// A row-encoded key. Short keys (a BIGINT is 9 bytes, a short string a few
/// more) are stored inline: no allocation per key, and no pointer to chase on
/// every probe of a state with millions of keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Inline(u8, [u8; 22]),
    Heap(Box<[u8]>),
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

/// Where a key's current state row is, and when it was last updated.
#[derive(Debug, Clone, Copy)]
struct Entry {
    chunk: usize,
    row: usize,
    updated: BatchTime,
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
    index: HashMap<Key, Entry>,
    chunks: Vec<Chunk>,
    dead: usize,
    /// Keys by update time, oldest first, for TTL expiry (only kept with a TTL).
    updates: VecDeque<(BatchTime, Vec<Key>)>,
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
            index: HashMap::new(),
            chunks: Vec::new(),
            dead: 0,
            updates: VecDeque::new(),
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

    /// The current state rows of those of `keys` that are held.
    /// (Each key once: a key may repeat in `keys`, e.g. once per partition.)
    pub fn lookup(&self, keys: &[Key]) -> Result<Option<RecordBatch>, ArrowError> {
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        let at: Vec<(usize, usize)> = keys
            .iter()
            .filter(|k| seen.insert(*k))
            .filter_map(|k| self.index.get(k))
            .map(|e| (e.chunk, e.row))
            .collect();
        if at.is_empty() {
            return Ok(None);
        }
        let chunks: Vec<&RecordBatch> = self.chunks.iter().map(|c| &c.batch).collect();
        interleave_record_batch(&chunks, &at).map(Some)
    }

    /// Makes `merged` (one row per key, keys `keys`) the current state of its keys.
    pub fn upsert(
        &mut self,
        merged: RecordBatch,
        keys: Vec<Key>,
        t: BatchTime,
    ) -> Result<(), ArrowError> {
        if merged.num_rows() == 0 {
            return Ok(());
        }
        let chunk = self.chunks.len();
        for (row, key) in keys.iter().enumerate() {
            let entry = Entry {
                chunk,
                row,
                updated: t,
            };
            if let Some(old) = self.index.insert(key.clone(), entry) {
                self.kill(old);
            }
        }
        let rows = merged.num_rows();
        self.chunks.push(Chunk {
            batch: merged,
            alive: vec![true; rows],
            live: rows,
        });
        if self.track_updates {
            self.updates.push_back((t, keys));
        }
        self.maybe_compact()
    }

    fn kill(&mut self, e: Entry) {
        if let Some(c) = self.chunks.get_mut(e.chunk) {
            if c.alive[e.row] {
                c.alive[e.row] = false;
                c.live -= 1;
                self.dead += 1;
            }
        }
    }

    /// Drops every key last updated at or before `cutoff`; returns how many.
    pub fn expire(&mut self, cutoff: BatchTime) -> Result<usize, ArrowError> {
        let mut dropped = 0;
        while self.updates.front().is_some_and(|(t, _)| *t <= cutoff) {
            let Some((t, keys)) = self.updates.pop_front() else {
                break;
            };
            for key in keys {
                if let Some(e) = self.index.get(&key).copied() {
                    if e.updated == t {
                        self.index.remove(&key);
                        self.kill(e);
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
        let mut next = 0usize;
        let mut new_pos: HashMap<(usize, usize), usize> = HashMap::with_capacity(live);
        for (ci, c) in self.chunks.iter().enumerate() {
            for (ri, alive) in c.alive.iter().enumerate() {
                if *alive {
                    new_pos.insert((ci, ri), next);
                    next += 1;
                }
            }
        }
        for e in self.index.values_mut() {
            if let Some(row) = new_pos.get(&(e.chunk, e.row)) {
                *e = Entry {
                    chunk: 0,
                    row: *row,
                    updated: e.updated,
                };
            }
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
        for e in self.index.values() {
            updated[e.chunk][e.row] = e.updated.millis();
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
    pub fn restore(&mut self, batches: Vec<RecordBatch>) -> Result<(), ArrowError> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Int64Type;
        let width = self.schema.fields().len();
        self.index
            .reserve(batches.iter().map(RecordBatch::num_rows).sum());
        let mut by_time: std::collections::BTreeMap<i64, Vec<Key>> = Default::default();
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
            let times = extra[0].as_primitive::<Int64Type>().clone();
            let keys = self.keys(&rows)?;
            let chunk = self.chunks.len();
            for (row, key) in keys.into_iter().enumerate() {
                let updated = BatchTime(times.value(row));
                if self.track_updates {
                    by_time
                        .entry(updated.millis())
                        .or_default()
                        .push(key.clone());
                }
                self.index.insert(
                    key,
                    Entry {
                        chunk,
                        row,
                        updated,
                    },
                );
            }
            let n = rows.num_rows();
            self.chunks.push(Chunk {
                batch: rows,
                alive: vec![true; n],
                live: n,
            });
        }
        self.updates = by_time
            .into_iter()
            .map(|(t, keys)| (BatchTime(t), keys))
            .collect();
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
        s.upsert(b, keys, BatchTime(t)).unwrap();
    }

    #[test]
    fn upserts_replace_a_key_s_row_and_lookup_finds_current_rows() {
        let mut s = KeyedState::new(schema(), 1, false).unwrap();
        put(&mut s, &[("a", 1), ("b", 2)], 1000);
        put(&mut s, &[("a", 5)], 2000);
        assert_eq!(contents(&s), [("a".into(), 5), ("b".into(), 2)]);
        let probe = batch(&[("b", 0), ("zz", 0), ("a", 0), ("b", 0)]);
        let found = s.lookup(&s.keys(&probe).unwrap()).unwrap().unwrap();
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
        let found = s.lookup(&s.keys(&probe).unwrap()).unwrap().unwrap();
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
        s.upsert(b.clone(), keys.clone(), BatchTime(1000)).unwrap();
        s.upsert(b, keys, BatchTime(2000)).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.all().unwrap().iter().map(|b| b.num_rows()).sum::<usize>(),
            1
        );
    }
}
