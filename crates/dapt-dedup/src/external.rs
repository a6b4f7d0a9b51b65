//! Clustering beyond one process's memory, after datatrove's MinHash steps (signatures per
//! shard, then buckets per band group, then clusters from the candidate pairs).
//!
//! [`clusters::resolve`](crate::clusters::resolve) holds every signature and every band
//! key in memory. [`cluster_roots`] needs only the union-find array (4 bytes a document)
//! and a bit per document, plus a sort buffer of `memory_bytes`:
//!
//! 1. exact keys: `(exact, index)` records are sorted (in runs of at most the buffer,
//!    spilled to files and merged); the first index of each key is an LSH entrant, the
//!    others join it;
//! 2. for each group of bands: `(band, key, index)` records of every entrant are sorted
//!    the same way; each bucket (equal band and key), in index order, gives the same
//!    candidate pairs as the in-memory pass: every member joins the bucket's first member,
//!    or, with `verify`, the first earlier member whose signature is similar enough
//!    (signatures fetched by index, once per bucket);
//! 3. union-find over the pairs.
//!
//! Each phase writes its candidate pairs to a file, so the band groups can run as
//! separate tasks (the dedup stage runs them as resumable shards), as datatrove's
//! bucket tasks do.
//!
//! The result equals the in-memory one: the pairs are the same, and union-find components
//! do not depend on the order of unions. Roots are the smallest index of each cluster.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::clusters::UnionFind;
use crate::minhash::{MinHasher, Signature, estimated_similarity};

/// A fixed-size record the sorter spills to disk.
trait Record: Copy + Ord {
    const SIZE: usize;
    fn put(&self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

/// An exact-duplicate key and the document's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ExactRecord(u128, u32);

impl Record for ExactRecord {
    const SIZE: usize = 20;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        ExactRecord(
            u128::from_le_bytes(b[..16].try_into().expect("16 bytes")),
            u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")),
        )
    }
}

/// A band, its key for one entrant, and the entrant's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct BandRecord(u32, u64, u32);

impl Record for BandRecord {
    const SIZE: usize = 16;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
        out.extend_from_slice(&self.2.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        BandRecord(
            u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
            u64::from_le_bytes(b[4..12].try_into().expect("8 bytes")),
            u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
        )
    }
}

/// Sorts records in runs of at most `capacity`, spilled to files under `dir`, then merged.
struct Sorter<R: Record> {
    dir: PathBuf,
    name: String,
    capacity: usize,
    buffer: Vec<R>,
    runs: Vec<PathBuf>,
}

impl<R: Record> Sorter<R> {
    fn new(dir: &Path, name: &str, memory_bytes: usize) -> Self {
        // The buffer, and the bytes of one run as it is written.
        let capacity = (memory_bytes / (std::mem::size_of::<R>() + R::SIZE)).max(1024);
        Sorter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            capacity,
            buffer: Vec::with_capacity(capacity.min(1 << 20)),
            runs: Vec::new(),
        }
    }

    fn push(&mut self, record: R) -> io::Result<()> {
        self.buffer.push(record);
        if self.buffer.len() >= self.capacity {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let path = self
            .dir
            .join(format!("{}-{:05}.run", self.name, self.runs.len()));
        let mut out = BufWriter::new(File::create(&path).map_err(|e| at(&path, e))?);
        let mut bytes = Vec::with_capacity(R::SIZE);
        for r in &self.buffer {
            bytes.clear();
            r.put(&mut bytes);
            out.write_all(&bytes).map_err(|e| at(&path, e))?;
        }
        out.flush().map_err(|e| at(&path, e))?;
        self.buffer.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Every record pushed, in order, to `visit`; the run files are removed afterwards.
    fn drain(mut self, visit: &mut dyn FnMut(R) -> io::Result<()>) -> io::Result<()> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            for r in self.buffer.drain(..) {
                visit(r)?;
            }
            return Ok(());
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut readers = Vec::with_capacity(self.runs.len());
        for path in &self.runs {
            readers.push(BufReader::with_capacity(
                64 << 10,
                File::open(path).map_err(|e| at(path, e))?,
            ));
        }
        let next = |reader: &mut BufReader<File>| -> io::Result<Option<R>> {
            let mut bytes = [0u8; 32];
            match reader.read_exact(&mut bytes[..R::SIZE]) {
                Ok(()) => Ok(Some(R::get(&bytes[..R::SIZE]))),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
                Err(e) => Err(e),
            }
        };
        let mut heap = BinaryHeap::new();
        for (run, reader) in readers.iter_mut().enumerate() {
            if let Some(r) = next(reader)? {
                heap.push(Reverse((r, run)));
            }
        }
        while let Some(Reverse((r, run))) = heap.pop() {
            visit(r)?;
            if let Some(r) = next(&mut readers[run])? {
                heap.push(Reverse((r, run)));
            }
        }
        for path in &self.runs {
            std::fs::remove_file(path).map_err(|e| at(path, e))?;
        }
        Ok(())
    }
}

/// `e` with the path it concerns (shared with `store`).
pub(crate) fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// What [`cluster_roots`] reads: the documents' exact keys and signatures, in index order,
/// as often as it needs, and single signatures by index (for `verify`).
pub trait SignatureSource {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Calls `visit(index, exact, signature)` for every document in index order.
    fn for_each(
        &self,
        visit: &mut dyn FnMut(u32, u128, &Signature) -> io::Result<()>,
    ) -> io::Result<()>;
    fn signature(&self, index: u32) -> io::Result<Signature>;
}

/// Settings of the out-of-core pass.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// The sort buffer: the most record bytes held in memory at once (per task).
    pub memory_bytes: usize,
    /// Bands per pass over the signatures (datatrove's band groups): more bands per group
    /// means fewer passes and more records per sort.
    pub bands_per_group: usize,
}

/// The band groups of `bands` bands, `per_group` each (the last may be smaller).
pub fn band_groups(bands: usize, per_group: usize) -> Vec<std::ops::Range<usize>> {
    let per_group = per_group.clamp(1, bands.max(1));
    (0..bands)
        .step_by(per_group)
        .map(|start| start..(start + per_group).min(bands))
        .collect()
}

/// Candidate pairs, `(a, b)` as two little-endian u32 each, written to `path` (whole, at
/// the end: a task either finished its file or left none).
struct PairWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
}

impl PairWriter {
    fn create(path: &Path) -> io::Result<Self> {
        let tmp = path.with_extension("tmp");
        let out = BufWriter::new(File::create(&tmp).map_err(|e| at(&tmp, e))?);
        Ok(PairWriter {
            path: path.to_path_buf(),
            tmp,
            out,
        })
    }

    fn pair(&mut self, a: u32, b: u32) -> io::Result<()> {
        self.out.write_all(&a.to_le_bytes())?;
        self.out.write_all(&b.to_le_bytes())
    }

    fn finish(self) -> io::Result<()> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all().map_err(|e| at(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| at(&self.path, e))
    }
}

/// Phase 1, exact duplicates: writes to `pairs` every document joined to the first (lowest
/// index) of its exact key, and to `entrants` a bit per document: whether it enters LSH.
pub fn exact_pairs(
    source: &dyn SignatureSource,
    bounds: &Bounds,
    scratch: &Path,
    pairs: &Path,
    entrants: &Path,
) -> io::Result<()> {
    let n = source.len();
    std::fs::create_dir_all(scratch).map_err(|e| at(scratch, e))?;
    let mut entrant = vec![0u8; n.div_ceil(8)];
    let mut exact = Sorter::<ExactRecord>::new(scratch, "exact", bounds.memory_bytes);
    source.for_each(&mut |i, key, _| exact.push(ExactRecord(key, i)))?;
    let mut out = PairWriter::create(pairs)?;
    let mut group: Option<(u128, u32)> = None;
    exact.drain(&mut |ExactRecord(key, i)| {
        match group {
            Some((k, first)) if k == key => out.pair(first, i)?,
            _ => {
                group = Some((key, i));
                entrant[i as usize / 8] |= 1 << (i % 8);
            }
        }
        Ok(())
    })?;
    out.finish()?;
    let tmp = entrants.with_extension("tmp");
    std::fs::write(&tmp, &entrant).map_err(|e| at(&tmp, e))?;
    std::fs::rename(&tmp, entrants).map_err(|e| at(entrants, e))
}

/// Phase 2, one task per group of bands: the candidate pairs of the LSH entrants
/// (`entrants`, from [`exact_pairs`]) in bands `bands`, to `pairs`.
#[allow(clippy::too_many_arguments)]
pub fn band_pairs(
    source: &dyn SignatureSource,
    hasher: &MinHasher,
    verify: Option<f64>,
    bands: std::ops::Range<usize>,
    bounds: &Bounds,
    scratch: &Path,
    entrants: &Path,
    pairs: &Path,
) -> io::Result<()> {
    std::fs::create_dir_all(scratch).map_err(|e| at(scratch, e))?;
    let entrant = std::fs::read(entrants).map_err(|e| at(entrants, e))?;
    let is_entrant = |i: u32| entrant[i as usize / 8] & (1 << (i % 8)) != 0;
    let mut sorter = Sorter::<BandRecord>::new(
        scratch,
        &format!("bands-{}-{}", bands.start, bands.end),
        bounds.memory_bytes,
    );
    source.for_each(&mut |i, _, signature| {
        if !is_entrant(i) {
            return Ok(());
        }
        for (band, key) in hasher.band_keys(signature).enumerate() {
            if bands.contains(&band) {
                sorter.push(BandRecord(band as u32, key, i))?;
            }
        }
        Ok(())
    })?;
    let mut out = PairWriter::create(pairs)?;
    let mut bucket: Vec<u32> = Vec::new();
    let mut current: Option<(u32, u64)> = None;
    let flush = |bucket: &mut Vec<u32>, out: &mut PairWriter| -> io::Result<()> {
        match verify {
            None => {
                for &i in &bucket[1..] {
                    out.pair(bucket[0], i)?;
                }
            }
            Some(t) if bucket.len() > 1 => {
                let signatures = bucket
                    .iter()
                    .map(|&i| source.signature(i))
                    .collect::<io::Result<Vec<_>>>()?;
                for k in 1..bucket.len() {
                    if let Some(j) =
                        (0..k).find(|&j| estimated_similarity(&signatures[k], &signatures[j]) >= t)
                    {
                        out.pair(bucket[j], bucket[k])?;
                    }
                }
            }
            Some(_) => {}
        }
        bucket.clear();
        Ok(())
    };
    sorter.drain(&mut |BandRecord(band, key, i)| {
        if current != Some((band, key)) {
            if !bucket.is_empty() {
                flush(&mut bucket, &mut out)?;
            }
            current = Some((band, key));
        }
        bucket.push(i);
        Ok(())
    })?;
    if !bucket.is_empty() {
        flush(&mut bucket, &mut out)?;
    }
    out.finish()
}

/// Phase 3: the cluster root of each of `n` documents (the smallest index of its
/// cluster) from the pair files of the phases before.
pub fn roots_from_pairs(n: usize, pair_files: &[PathBuf]) -> io::Result<Vec<u32>> {
    let mut uf = UnionFind::new(n);
    for path in pair_files {
        let mut input = BufReader::new(File::open(path).map_err(|e| at(path, e))?);
        let mut record = [0u8; 8];
        loop {
            match input.read_exact(&mut record) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(at(path, e)),
            }
            let a = u32::from_le_bytes(record[..4].try_into().expect("4 bytes"));
            let b = u32::from_le_bytes(record[4..].try_into().expect("4 bytes"));
            if a as usize >= n || b as usize >= n {
                return Err(at(
                    path,
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("pair ({a}, {b}) of {n} documents"),
                    ),
                ));
            }
            uf.union(a, b);
        }
    }
    Ok((0..n as u32).map(|i| uf.find(i)).collect())
}

/// The three phases in one call, in `scratch`: the cluster root of every document (the
/// smallest index in its cluster), as [`crate::clusters::resolve`] clusters them (see the
/// module docs). `progress` receives the bands of each finished group.
pub fn cluster_roots(
    source: &dyn SignatureSource,
    hasher: &MinHasher,
    verify: Option<f64>,
    bounds: &Bounds,
    scratch: &Path,
    progress: &mut dyn FnMut(u64),
) -> io::Result<Vec<u32>> {
    std::fs::create_dir_all(scratch).map_err(|e| at(scratch, e))?;
    let entrants = scratch.join("entrants.bin");
    let mut pair_files = vec![scratch.join("pairs-exact.bin")];
    exact_pairs(source, bounds, scratch, &pair_files[0], &entrants)?;
    for group in band_groups(hasher.config().bands, bounds.bands_per_group) {
        let path = scratch.join(format!("pairs-bands-{}.bin", group.start));
        let width = group.len() as u64;
        band_pairs(
            source, hasher, verify, group, bounds, scratch, &entrants, &path,
        )?;
        pair_files.push(path);
        progress(width);
    }
    let roots = roots_from_pairs(source.len(), &pair_files)?;
    for path in pair_files.iter().chain([&entrants]) {
        std::fs::remove_file(path).map_err(|e| at(path, e))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusters::{Clusters, Member, decisions, resolve};
    use crate::minhash::MinHashConfig;
    use crate::text::{exact_key, mix};

    struct InMemory<'a>(&'a [(u128, Signature)]);

    impl SignatureSource for InMemory<'_> {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn for_each(
            &self,
            visit: &mut dyn FnMut(u32, u128, &Signature) -> io::Result<()>,
        ) -> io::Result<()> {
            for (i, (exact, signature)) in self.0.iter().enumerate() {
                visit(i as u32, *exact, signature)?;
            }
            Ok(())
        }
        fn signature(&self, index: u32) -> io::Result<Signature> {
            Ok(self.0[index as usize].1.clone())
        }
    }

    /// Documents from a few hundred seeds, each copied exactly, nearly (a few words
    /// changed) or not at all, in a shuffled order.
    fn corpus() -> Vec<String> {
        let base = |seed: u64| -> Vec<String> {
            (0..120)
                .map(|w| format!("w{}", mix(seed << 20 | w) % 3000))
                .collect()
        };
        let mut docs = Vec::new();
        for seed in 0..400u64 {
            let words = base(seed);
            docs.push(words.join(" "));
            match seed % 4 {
                0 => docs.push(words.join(" ").to_uppercase()),
                1 => {
                    let mut near = words.clone();
                    for k in 0..(seed as usize % 9) {
                        near[k * 11] = format!("x{k}");
                    }
                    docs.push(near.join(" "));
                }
                2 => {
                    let mut far = words.clone();
                    far.truncate(70);
                    docs.push(far.join(" "));
                }
                _ => {}
            }
        }
        let mut order: Vec<usize> = (0..docs.len()).collect();
        order.sort_by_key(|&i| mix(i as u64 ^ 0x5eed));
        order.into_iter().map(|i| docs[i].clone()).collect()
    }

    #[test]
    fn out_of_core_clusters_equal_in_memory_ones_with_and_without_verify() {
        let texts = corpus();
        let hasher = MinHasher::new(MinHashConfig::default());
        let rows: Vec<(u128, Signature)> = texts
            .iter()
            .map(|t| (exact_key(t), hasher.signature(t)))
            .collect();
        let ids: Vec<String> = (0..texts.len())
            .map(|i| format!("doc/{:05}", mix(i as u64) % 100_000))
            .collect();
        let members: Vec<Member> = rows
            .iter()
            .enumerate()
            .map(|(i, (exact, signature))| Member {
                id: &ids[i],
                exact: *exact,
                signature,
                protected: i % 37 == 0,
            })
            .collect();
        let scratch = std::env::temp_dir().join(format!("dapt-external-{}", std::process::id()));
        for verify in [None, Some(0.7)] {
            let expected = resolve(&members, &hasher, verify, &mut |_| {});
            let duplicates = expected
                .iter()
                .filter(|d| matches!(d, crate::Decision::Duplicate { .. }))
                .count();
            assert!(
                duplicates > 150,
                "the corpus should have duplicates: {duplicates}"
            );
            // A buffer of 1024 records: dozens of runs per sort; and one big enough for all.
            for (memory_bytes, bands_per_group) in [(0, 3), (1 << 30, 64)] {
                let bounds = Bounds {
                    memory_bytes,
                    bands_per_group,
                };
                let mut bands_done = 0;
                let roots = cluster_roots(
                    &InMemory(&rows),
                    &hasher,
                    verify,
                    &bounds,
                    &scratch,
                    &mut |n| bands_done += n,
                )
                .unwrap();
                assert_eq!(bands_done as usize, hasher.config().bands);
                assert_eq!(
                    decisions(&members, &roots),
                    expected,
                    "verify {verify:?}, {bounds:?}"
                );
                // The same decisions streamed, without the members in memory.
                let clusters = Clusters::new(roots, |visit| {
                    for (i, m) in members.iter().enumerate() {
                        visit(i as u32, m.id, m.protected, m.exact);
                    }
                    Ok::<(), ()>(())
                })
                .unwrap();
                let streamed: Vec<_> = members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| clusters.decision(i, m.exact))
                    .collect();
                assert_eq!(streamed, expected);
            }
        }
        assert_eq!(
            std::fs::read_dir(&scratch).unwrap().count(),
            0,
            "sort runs are removed"
        );
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
