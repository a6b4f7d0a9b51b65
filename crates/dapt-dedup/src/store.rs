//! A compact file of per-document signatures, written by the first (sharded,
//! resumable) pass of the dedup stage and read by the clustering pass: for each
//! document its id, corpus, whether it is protected, its exact key and MinHash
//! signature — little-endian, length-prefixed, about `4 * permutations + 40` bytes
//! plus the id per document.
//!
//! Files are written ([`SignatureWriter`]) and read ([`SignatureReader`]) one document at
//! a time: a pass over a shard holds one record, not the shard's signatures (a shard of
//! 200,000 documents would otherwise hold some 120 MB of them, twice over while encoding).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::external::at;
use crate::minhash::Signature;

#[derive(Debug, Clone, PartialEq)]
pub struct DocSignature {
    pub id: String,
    pub source: String,
    pub protected: bool,
    pub exact: u128,
    pub signature: Signature,
}

impl DocSignature {
    /// The document as clustering sees it.
    pub fn member(&self) -> crate::clusters::Member<'_> {
        crate::clusters::Member {
            id: &self.id,
            exact: self.exact,
            signature: &self.signature,
            protected: self.protected,
        }
    }
}

const MAGIC: &[u8; 8] = b"DAPTSIG1";

pub fn write_all(out: &mut impl Write, docs: &[DocSignature]) -> io::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&(docs.len() as u64).to_le_bytes())?;
    docs.iter().try_for_each(|d| write_record(out, d))
}

fn write_record(out: &mut impl Write, d: &DocSignature) -> io::Result<()> {
    write_str(out, &d.id)?;
    write_str(out, &d.source)?;
    out.write_all(&[u8::from(d.protected)])?;
    out.write_all(&d.exact.to_le_bytes())?;
    out.write_all(&(d.signature.len() as u32).to_le_bytes())?;
    for v in &d.signature {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

pub fn read_all(input: &mut impl Read) -> io::Result<Vec<DocSignature>> {
    let count = read_header(input)?;
    let mut docs = Vec::with_capacity(count.min(1 << 24));
    for _ in 0..count {
        docs.push(read_record(input)?);
    }
    Ok(docs)
}

/// The magic and the document count.
fn read_header(input: &mut impl Read) -> io::Result<usize> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a dapt signature file",
        ));
    }
    Ok(u64::from_le_bytes(read_array(input)?) as usize)
}

fn read_record(input: &mut impl Read) -> io::Result<DocSignature> {
    let id = read_str(input)?;
    let source = read_str(input)?;
    let protected = read_array::<1>(input)?[0] != 0;
    let exact = u128::from_le_bytes(read_array(input)?);
    let len = u32::from_le_bytes(read_array(input)?) as usize;
    let mut signature = Vec::with_capacity(len);
    for _ in 0..len {
        signature.push(u32::from_le_bytes(read_array(input)?));
    }
    Ok(DocSignature {
        id,
        source,
        protected,
        exact,
        signature,
    })
}

/// Writes a signature file a document at a time, to `PATH.tmp`; [`SignatureWriter::finish`]
/// fills in the count, syncs and renames it to `PATH`, so a killed pass leaves no file
/// under the final name.
pub struct SignatureWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    count: u64,
}

impl SignatureWriter {
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
        }
        let file = File::create(&tmp).map_err(|e| at(&tmp, e))?;
        let mut out = BufWriter::new(file);
        out.write_all(MAGIC)?;
        out.write_all(&0u64.to_le_bytes())?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            out,
            count: 0,
        })
    }

    pub fn push(&mut self, doc: &DocSignature) -> io::Result<()> {
        self.count += 1;
        write_record(&mut self.out, doc).map_err(|e| at(&self.tmp, e))
    }

    /// Documents written, once the file is in place.
    pub fn finish(self) -> io::Result<u64> {
        let tmp = self.tmp;
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| at(&tmp, e.into_error()))?;
        file.seek(SeekFrom::Start(MAGIC.len() as u64))
            .and_then(|_| file.write_all(&self.count.to_le_bytes()))
            .and_then(|_| file.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| at(&tmp, e))?;
        Ok(self.count)
    }
}

/// The documents of a signature file, read one at a time, in order.
pub struct SignatureReader {
    path: PathBuf,
    input: BufReader<File>,
    left: usize,
}

impl SignatureReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path).map_err(|e| at(path, e))?;
        let mut input = BufReader::new(file);
        let left = read_header(&mut input).map_err(|e| at(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            input,
            left,
        })
    }

    /// Documents the file holds.
    pub fn len(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl Iterator for SignatureReader {
    type Item = io::Result<DocSignature>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(read_record(&mut self.input).map_err(|e| at(&self.path, e)))
    }
}

fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u32).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn read_str(input: &mut impl Read) -> io::Result<String> {
    let len = u32::from_le_bytes(read_array(input)?) as usize;
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads one signature file whole (one shard's documents).
pub fn read_file(path: &Path) -> io::Result<Vec<DocSignature>> {
    let file = File::open(path).map_err(|e| at(path, e))?;
    read_all(&mut io::BufReader::new(file)).map_err(|e| at(path, e))
}

/// Signature files read as one sequence of documents, `copies` times over (a benchmark
/// repeats its corpus), one file in memory at a time, for
/// [`crate::external::cluster_roots`]; single signatures come from a fixed-width table
/// written beside them on opening.
pub struct SignatureFiles {
    files: Vec<PathBuf>,
    copies: usize,
    len: usize,
    width: usize,
    table: File,
}

impl SignatureFiles {
    /// `files` in order; the table goes to `scratch/signatures.bin`.
    pub fn open(files: Vec<PathBuf>, copies: usize, scratch: &Path) -> io::Result<Self> {
        let table_path = scratch.join("signatures.bin");
        let mut table = BufWriter::new(File::create(&table_path).map_err(|e| at(&table_path, e))?);
        let (mut len, mut width) = (0, None);
        for path in &files {
            for d in SignatureReader::open(path)? {
                let d = d?;
                match width {
                    None => width = Some(d.signature.len()),
                    Some(w) if w != d.signature.len() => {
                        return Err(at(
                            path,
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "signature of {} has {} minima, others {w}",
                                    d.id,
                                    d.signature.len()
                                ),
                            ),
                        ));
                    }
                    Some(_) => {}
                }
                len += 1;
                for v in &d.signature {
                    table.write_all(&v.to_le_bytes())?;
                }
            }
        }
        table.flush().map_err(|e| at(&table_path, e))?;
        Ok(SignatureFiles {
            files,
            copies,
            len,
            width: width.unwrap_or(0),
            table: File::open(&table_path).map_err(|e| at(&table_path, e))?,
        })
    }
}

impl crate::external::SignatureSource for SignatureFiles {
    fn len(&self) -> usize {
        self.len * self.copies
    }

    fn for_each(
        &self,
        visit: &mut dyn FnMut(u32, u128, &Signature) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut i = 0u32;
        for _ in 0..self.copies {
            for path in &self.files {
                for d in SignatureReader::open(path)? {
                    let d = d?;
                    visit(i, d.exact, &d.signature)?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    fn signature(&self, index: u32) -> io::Result<Signature> {
        let row = index as usize % self.len.max(1);
        let mut bytes = vec![0u8; self.width * 4];
        self.table
            .read_exact_at(&mut bytes, (row * self.width * 4) as u64)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let docs = vec![
            DocSignature {
                id: "reuters/a/1".into(),
                source: "reuters".into(),
                protected: true,
                exact: u128::MAX - 7,
                signature: vec![1, 2, u32::MAX],
            },
            DocSignature {
                id: "ü".into(),
                source: "x".into(),
                protected: false,
                exact: 0,
                signature: vec![],
            },
        ];
        let mut bytes = Vec::new();
        write_all(&mut bytes, &docs).unwrap();
        assert_eq!(read_all(&mut bytes.as_slice()).unwrap(), docs);
        assert!(read_all(&mut &bytes[..bytes.len() - 1]).is_err());

        // Streamed: the same bytes, one document at a time, nothing under the final name
        // before `finish`.
        let dir = std::env::temp_dir().join(format!("dapt-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sig");
        let mut writer = SignatureWriter::create(&path).unwrap();
        docs.iter().for_each(|d| writer.push(d).unwrap());
        assert!(!path.exists());
        assert_eq!(writer.finish().unwrap(), 2);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let reader = SignatureReader::open(&path).unwrap();
        assert_eq!(reader.len(), 2);
        assert_eq!(reader.collect::<io::Result<Vec<_>>>().unwrap(), docs);
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let error = SignatureReader::open(&path)
            .unwrap()
            .collect::<io::Result<Vec<_>>>()
            .unwrap_err();
        assert!(error.to_string().contains("a.sig"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
