//! The function artifact: what the user built (a `bootstrap.zip` or a bare `bootstrap`
//! executable), checked and turned into a reproducible zip whose SHA-256 names it in S3.
//!
//! Repackaging makes the key depend on the binary alone: cargo-lambda's zips carry build
//! times, so an unchanged binary rebuilt by CI would otherwise upload and redeploy.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::config::Architecture;

/// A checked artifact, ready to upload.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub zip: Vec<u8>,
    pub architecture: Architecture,
    /// Hex SHA-256 of `zip`: the S3 key's stem.
    pub sha256_hex: String,
    /// Base64 SHA-256 of `zip`, as Lambda reports `CodeSha256`.
    pub code_sha256: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArtifactError {
    #[error(
        "{path} does not exist: build the function first (`cargo lambda build --release --arm64 --output-format zip -p openai-proxy-function`) or set FUNCTION_ARTIFACT"
    )]
    Missing { path: String },
    #[error("{path} could not be read ({cause}): check its permissions")]
    Unreadable { path: String, cause: String },
    #[error(
        "{path} is neither a zip nor an ELF executable: set FUNCTION_ARTIFACT to the bootstrap.zip or bootstrap binary that cargo lambda builds"
    )]
    UnknownFormat { path: String },
    #[error(
        "{path} is not a readable zip ({cause}): rebuild it with `cargo lambda build --output-format zip`"
    )]
    BadZip { path: String, cause: String },
    #[error(
        "{path} has no `bootstrap` at its root: Lambda's provided.al2023 runtime starts that file; rebuild with cargo lambda"
    )]
    NoBootstrap { path: String },
    #[error(
        "`bootstrap` in {path} is not executable (mode {mode:o}): zip it with mode 0755, or point FUNCTION_ARTIFACT at the binary"
    )]
    NotExecutable { path: String, mode: u32 },
    #[error("`bootstrap` in {path} is not a Linux ELF executable: build it for Lambda with cargo lambda")]
    NotElf { path: String },
    #[error(
        "`bootstrap` in {path} is built for {found}, which Lambda does not run: build for arm64 (aarch64) or x86_64"
    )]
    UnsupportedMachine { path: String, found: String },
    #[error("`bootstrap` in {path} is built for {} but ARCHITECTURE={}: rebuild with `cargo lambda build --{}` or set ARCHITECTURE={}", found.as_str(), wanted.as_str(), wanted.cargo_lambda_flag(), found.as_str())]
    WrongArchitecture {
        path: String,
        found: Architecture,
        wanted: Architecture,
    },
}

impl Architecture {
    fn cargo_lambda_flag(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86-64",
        }
    }
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const ELF_MAGIC: &[u8] = b"\x7fELF";
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// Reads and checks the artifact at `path`; `wanted` is ARCHITECTURE when set.
pub fn load(path: &Path, wanted: Option<Architecture>) -> Result<Artifact, ArtifactError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ArtifactError::Missing { path: shown.clone() },
        _ => ArtifactError::Unreadable {
            path: shown.clone(),
            cause: e.to_string(),
        },
    })?;
    let files = if bytes.starts_with(ZIP_MAGIC) {
        unzip(&bytes, &shown)?
    } else if bytes.starts_with(ELF_MAGIC) {
        let mode = file_mode(path);
        vec![File {
            name: "bootstrap".into(),
            mode,
            data: bytes,
        }]
    } else {
        return Err(ArtifactError::UnknownFormat { path: shown });
    };
    let bootstrap = files
        .iter()
        .find(|f| f.name == "bootstrap")
        .ok_or_else(|| ArtifactError::NoBootstrap { path: shown.clone() })?;
    if bootstrap.mode & 0o111 == 0 {
        return Err(ArtifactError::NotExecutable {
            path: shown,
            mode: bootstrap.mode,
        });
    }
    let architecture = elf_architecture(&bootstrap.data, &shown)?;
    if let Some(wanted) = wanted
        && wanted != architecture
    {
        return Err(ArtifactError::WrongArchitecture {
            path: shown,
            found: architecture,
            wanted,
        });
    }
    let zip = reproducible_zip(files);
    let digest = Sha256::digest(&zip);
    Ok(Artifact {
        sha256_hex: hex(&digest),
        code_sha256: aws_smithy_types::base64::encode(digest),
        zip,
        architecture,
    })
}

struct File {
    name: String,
    mode: u32,
    data: Vec<u8>,
}

fn unzip(bytes: &[u8], shown: &str) -> Result<Vec<File>, ArtifactError> {
    let bad = |e: zip::result::ZipError| ArtifactError::BadZip {
        path: shown.to_owned(),
        cause: e.to_string(),
    };
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(bad)?;
    let mut files = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad)?;
        if entry.is_dir() {
            continue;
        }
        // Zips written on Windows carry no unix mode; Lambda then runs nothing.
        let mode = entry.unix_mode().unwrap_or(0o644);
        let name = entry.name().map_err(bad)?.into_owned();
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|e| ArtifactError::BadZip {
            path: shown.to_owned(),
            cause: e.to_string(),
        })?;
        files.push(File { name, mode, data });
    }
    Ok(files)
}

#[cfg(unix)]
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> u32 {
    0o755
}

/// The ELF header's machine field says what the binary runs on.
fn elf_architecture(data: &[u8], shown: &str) -> Result<Architecture, ArtifactError> {
    if data.len() < 20 || !data.starts_with(ELF_MAGIC) {
        return Err(ArtifactError::NotElf {
            path: shown.to_owned(),
        });
    }
    let field = [data[18], data[19]];
    // EI_DATA (byte 5): 1 little-endian, 2 big-endian.
    let machine = if data[5] == 2 {
        u16::from_be_bytes(field)
    } else {
        u16::from_le_bytes(field)
    };
    match machine {
        EM_AARCH64 => Ok(Architecture::Arm64),
        EM_X86_64 => Ok(Architecture::X86_64),
        other => Err(ArtifactError::UnsupportedMachine {
            path: shown.to_owned(),
            found: format!("ELF machine {other}"),
        }),
    }
}

/// Same files in, same bytes out: sorted entries, a fixed timestamp, fixed modes
/// (0755 for `bootstrap`) and a fixed compression level.
fn reproducible_zip(mut files: Vec<File>) -> Vec<u8> {
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for file in files {
        let mode = if file.name == "bootstrap" {
            0o755
        } else {
            file.mode & 0o777
        };
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(DateTime::default())
            .unix_permissions(mode);
        // Writing into memory cannot fail for I/O reasons; the zip crate only refuses
        // invalid names, which came out of a valid zip or are "bootstrap".
        writer
            .start_file(file.name, options)
            .expect("in-memory zip entry");
        writer.write_all(&file.data).expect("in-memory zip write");
    }
    writer.finish().expect("in-memory zip").into_inner()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The first 64 bytes of an ELF64 executable for `machine`, then `payload`.
    pub fn elf(machine: u16, payload: &[u8]) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(ELF_MAGIC);
        header[4] = 2; // ELFCLASS64
        header[5] = 1; // little-endian
        header[6] = 1;
        header[16] = 2; // ET_EXEC
        header[18..20].copy_from_slice(&machine.to_le_bytes());
        header.extend_from_slice(payload);
        header
    }

    fn write(dir: &Path, name: &str, data: &[u8], mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn zip_of(entries: &[(&str, &[u8], u32)], mtime: DateTime) -> Vec<u8> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, mode) in entries {
            let options = SimpleFileOptions::default()
                .last_modified_time(mtime)
                .unix_permissions(*mode);
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn the_same_binary_gives_byte_identical_zips_whatever_the_input_zip_times() {
        let dir = tempdir();
        let bin = elf(EM_AARCH64, b"payload");
        let early = DateTime::from_date_and_time(2020, 1, 2, 3, 4, 5).unwrap();
        let late = DateTime::from_date_and_time(2026, 6, 7, 8, 9, 10).unwrap();
        let a = write(
            dir.path(),
            "a.zip",
            &zip_of(&[("bootstrap", &bin, 0o755)], early),
            0o644,
        );
        let b = write(
            dir.path(),
            "b.zip",
            &zip_of(&[("bootstrap", &bin, 0o755)], late),
            0o644,
        );
        let raw = write(dir.path(), "bootstrap", &bin, 0o755);
        let (a, b, raw) = (
            load(&a, None).unwrap(),
            load(&b, None).unwrap(),
            load(&raw, None).unwrap(),
        );
        assert_eq!(a.zip, b.zip);
        assert_eq!(a.zip, raw.zip);
        assert_eq!(a.sha256_hex, raw.sha256_hex);
        let other = write(dir.path(), "other", &elf(EM_AARCH64, b"changed"), 0o755);
        assert_ne!(load(&other, None).unwrap().sha256_hex, a.sha256_hex);
    }

    #[test]
    fn repackaged_zip_keeps_bootstrap_executable_and_other_files() {
        let dir = tempdir();
        let bin = elf(EM_X86_64, b"x");
        let input = zip_of(
            &[("config.json", b"{}", 0o600), ("bootstrap", &bin, 0o700)],
            DateTime::default(),
        );
        let path = write(dir.path(), "in.zip", &input, 0o644);
        let artifact = load(&path, None).unwrap();
        let mut archive = ZipArchive::new(Cursor::new(artifact.zip)).unwrap();
        let names: Vec<_> = (0..archive.len())
            .map(|i| archive.by_index(i).unwrap().name().unwrap().into_owned())
            .collect();
        assert_eq!(names, ["bootstrap", "config.json"]);
        assert_eq!(
            archive.by_name("bootstrap").unwrap().unix_mode().unwrap() & 0o777,
            0o755
        );
        assert_eq!(
            archive.by_name("config.json").unwrap().unix_mode().unwrap() & 0o777,
            0o600
        );
    }

    #[test]
    fn architecture_is_read_from_the_elf_header() {
        let dir = tempdir();
        let arm = write(dir.path(), "arm", &elf(EM_AARCH64, b""), 0o755);
        let x86 = write(dir.path(), "x86", &elf(EM_X86_64, b""), 0o755);
        assert_eq!(load(&arm, None).unwrap().architecture, Architecture::Arm64);
        assert_eq!(load(&x86, None).unwrap().architecture, Architecture::X86_64);
        let mut riscv = elf(243, b"");
        riscv[18..20].copy_from_slice(&243u16.to_le_bytes());
        let riscv = write(dir.path(), "riscv", &riscv, 0o755);
        assert!(matches!(
            load(&riscv, None),
            Err(ArtifactError::UnsupportedMachine { .. })
        ));
    }

    #[test]
    fn a_binary_for_the_other_architecture_is_refused_naming_the_fix() {
        let dir = tempdir();
        let x86 = write(dir.path(), "bootstrap", &elf(EM_X86_64, b""), 0o755);
        let err = load(&x86, Some(Architecture::Arm64)).unwrap_err();
        assert_eq!(
            err,
            ArtifactError::WrongArchitecture {
                path: x86.display().to_string(),
                found: Architecture::X86_64,
                wanted: Architecture::Arm64
            }
        );
        let text = err.to_string();
        assert!(text.contains("cargo lambda build --arm64"), "{text}");
        assert!(text.contains("ARCHITECTURE=x86_64"), "{text}");
    }

    #[test]
    fn bad_artifacts_are_refused_with_their_cause() {
        let dir = tempdir();
        let missing = dir.path().join("nope.zip");
        assert!(matches!(load(&missing, None), Err(ArtifactError::Missing { .. })));
        let text = write(dir.path(), "notes.txt", b"hello", 0o644);
        assert!(matches!(
            load(&text, None),
            Err(ArtifactError::UnknownFormat { .. })
        ));
        let truncated = write(dir.path(), "t.zip", b"PK\x03\x04garbage", 0o644);
        assert!(matches!(
            load(&truncated, None),
            Err(ArtifactError::BadZip { .. })
        ));
        let no_boot = zip_of(&[("main", &elf(EM_X86_64, b""), 0o755)], DateTime::default());
        let no_boot = write(dir.path(), "nb.zip", &no_boot, 0o644);
        assert!(matches!(
            load(&no_boot, None),
            Err(ArtifactError::NoBootstrap { .. })
        ));
        let not_exec = write(dir.path(), "bootstrap", &elf(EM_X86_64, b""), 0o644);
        assert!(matches!(
            load(&not_exec, None),
            Err(ArtifactError::NotExecutable { .. })
        ));
        let script = zip_of(
            &[("bootstrap", b"#!/bin/sh\necho hi\n", 0o755)],
            DateTime::default(),
        );
        let script = write(dir.path(), "s.zip", &script, 0o644);
        assert!(matches!(load(&script, None), Err(ArtifactError::NotElf { .. })));
    }

    #[test]
    fn code_sha256_and_the_hex_key_are_the_same_digest_of_the_zip() {
        let dir = tempdir();
        let path = write(dir.path(), "bootstrap", &elf(EM_X86_64, b""), 0o755);
        let artifact = load(&path, None).unwrap();
        let decoded = aws_smithy_types::base64::decode(&artifact.code_sha256).unwrap();
        assert_eq!(decoded.len(), 32);
        assert_eq!(hex(&decoded), artifact.sha256_hex);
        assert_eq!(hex(&Sha256::digest(&artifact.zip)), artifact.sha256_hex);
    }
}
