//! # Hash
//!
//! In: a [`FileEntry`] from the scan. Out: a [`HashedFile`]: the file's bytes, their
//! sha256 (change detection), and the file's identity: `doc_id` = first 16 hex chars of
//! md5(path), and the deterministic point id of each of its chunks.
//!
//! Identity depends only on the path, so every retry of a file overwrites the same points.

use std::io::Read;

use md5::{Digest as _, Md5};
use sha2::Sha256;
use uuid::Uuid;

use crate::scan::FileEntry;

/// The namespace of point ids: UUID v5 of (`doc_id`, chunk index) under it.
const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x5e6f_1c2a_8b3d_4e7f_9a01_b2c3_d4e5_f607);

/// A file whose content has been read and fingerprinted.
#[derive(Debug, Clone)]
pub struct HashedFile {
    pub entry: FileEntry,
    pub doc_id: String,
    pub content_hash: String,
    pub bytes: Vec<u8>,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("file is larger than the {limit_mib} MiB limit ({size} bytes); raise --max-file-size to index it")]
    TooLarge { size: u64, limit_mib: u64 },
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a file (refusing anything over `max_bytes`) and hashes its content.
pub fn hash_file(entry: FileEntry, max_bytes: u64) -> Result<HashedFile, ReadError> {
    if entry.size > max_bytes {
        return Err(ReadError::TooLarge { size: entry.size, limit_mib: max_bytes >> 20 });
    }
    let mut bytes = Vec::with_capacity(entry.size as usize);
    std::fs::File::open(entry.path())?.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge { size: bytes.len() as u64, limit_mib: max_bytes >> 20 });
    }
    Ok(HashedFile { doc_id: doc_id(&entry.path_text), content_hash: sha256_hex(&bytes), entry, bytes })
}

/// First 16 hex characters of md5(path).
pub fn doc_id(path_text: &str) -> String {
    let digest = Md5::digest(path_text.as_bytes());
    hex::encode(&digest[..8])
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The point id of chunk `chunk_index` of document `doc_id`.
pub fn point_id(doc_id: &str, chunk_index: u32) -> Uuid {
    Uuid::new_v5(&POINT_NAMESPACE, format!("{doc_id}:{chunk_index}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_deterministic_and_path_based() {
        assert_eq!(doc_id("/docs/a.txt"), doc_id("/docs/a.txt"));
        assert_ne!(doc_id("/docs/a.txt"), doc_id("/docs/b.txt"));
        assert_eq!(doc_id("/docs/a.txt").len(), 16);
        // md5("abc") = 900150983cd24fb0d6963f7d28e17f72
        assert_eq!(doc_id("abc"), "900150983cd24fb0");
        assert_eq!(point_id("d", 3), point_id("d", 3));
        assert_ne!(point_id("d", 3), point_id("d", 4));
        assert_eq!(point_id("d", 3).get_version_num(), 5);
    }

    #[test]
    fn hashes_content_and_refuses_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "abc").unwrap();
        let entry = FileEntry {
            path_text: path.to_string_lossy().into_owned(),
            size: 3,
            modified_ns: 0,
            extension: "txt".into(),
        };
        let hashed = hash_file(entry.clone(), 1024).unwrap();
        assert_eq!(hashed.content_hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hashed.bytes, b"abc");
        let error = hash_file(entry, 2).unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
    }
}
