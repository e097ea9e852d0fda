//! Packaging: a function's `bootstrap` into a deterministic Lambda zip, keyed by its content.
//!
//! The same bytes always give the same zip (one entry `bootstrap`, mode 0755, timestamp
//! 1980-01-01 00:00, fixed compression), so the sha256 of the bootstrap names the zip: an
//! unchanged function keeps its key, is never uploaded again, and CloudFormation sees no change
//! to it. The key needs only a hash (milliseconds); the zip is built only when it must be
//! uploaded (deflating three 13 MB bootstraps takes seconds).

use std::io::{Cursor, Write};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// A function's build, named by its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The function's name (`ingest`, `processor`, ...).
    pub function: String,
    bootstrap: Vec<u8>,
    /// Hex sha256 of the bootstrap.
    pub sha256: String,
}

impl Artifact {
    /// The object key the artifact is stored under: its content names it.
    pub fn key(&self) -> String {
        format!("functions/{}/{}.zip", self.function, self.sha256)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot zip the `{function}` bootstrap")]
pub struct PackageError {
    function: String,
    #[source]
    source: std::io::Error,
}

/// The artifact of `bootstrap` (the function's executable).
pub fn package(function: &str, bootstrap: Vec<u8>) -> Artifact {
    Artifact {
        function: function.to_owned(),
        sha256: sha256_hex(&bootstrap),
        bootstrap,
    }
}

impl Artifact {
    /// The deterministic Lambda zip of the bootstrap.
    pub fn zip(&self) -> Result<Vec<u8>, PackageError> {
        zip_bootstrap(&self.function, &self.bootstrap)
    }
}

fn zip_bootstrap(function: &str, bootstrap: &[u8]) -> Result<Vec<u8>, PackageError> {
    let fail = |source: std::io::Error| PackageError {
        function: function.to_owned(),
        source,
    };
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(9))
        .last_modified_time(DateTime::default()) // 1980-01-01 00:00:00, the zip epoch
        .unix_permissions(0o755);
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    writer
        .start_file("bootstrap", options)
        .map_err(|e| fail(std::io::Error::other(e)))?;
    writer.write_all(bootstrap).map_err(fail)?;
    Ok(writer
        .finish()
        .map_err(|e| fail(std::io::Error::other(e)))?
        .into_inner())
}

/// The hex sha256 of `bytes`: the content name of artifacts and templates.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn executable() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn the_same_bootstrap_gives_byte_identical_zips_and_keys() {
        let first = package("ingest", executable());
        let second = package("ingest", executable());
        assert_eq!(first.zip().unwrap(), second.zip().unwrap());
        assert_eq!(first.key(), second.key());
        assert_eq!(
            first.key(),
            format!("functions/ingest/{}.zip", first.sha256)
        );
        assert_eq!(first.sha256.len(), 64);
    }

    #[test]
    fn a_changed_bootstrap_gets_another_key() {
        let mut changed = executable();
        changed[7] ^= 1;
        assert_ne!(
            package("ingest", executable()).key(),
            package("ingest", changed).key()
        );
    }

    #[test]
    fn the_zip_holds_one_executable_bootstrap_at_the_zip_epoch() {
        let artifact = package("reports", executable());
        let mut archive = zip::ZipArchive::new(Cursor::new(artifact.zip().unwrap())).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "bootstrap");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        let time = entry.last_modified().unwrap();
        assert_eq!(
            (
                time.year(),
                time.month(),
                time.day(),
                time.hour(),
                time.minute()
            ),
            (1980, 1, 1, 0, 0)
        );
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content, executable());
    }
}
