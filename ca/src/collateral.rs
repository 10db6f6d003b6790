//! DCAP collateral files, read once at start (this module does I/O; the
//! parsing is `tl-evidence`'s, which is pure).
//!
//! Accepted layouts:
//! * a `QuoteCollateralV3` JSON file, as PCCS clients (dcap-qvl) write it;
//! * a directory of Intel PCS responses: `tcb_info.json`
//!   (`{"tcbInfo":..,"signature":..}`), `qe_identity.json`,
//!   `tcb_info_issuer_chain.pem`, `qe_identity_issuer_chain.pem` (optional,
//!   defaults to the TCB info chain), `pck_crl_issuer_chain.pem`,
//!   `pck_crl.der`, `root_ca_crl.der` (CRLs DER or hex DER).
//!
//! [`read_collateral`] reads one of them; [`load_collateral_dir`] reads a
//! directory holding many (`*.json` files and PCS-layout subdirectories, or
//! itself one PCS layout) into a [`CollateralStore`] keyed by TEE and FMSPC.

use std::path::Path;

use tl_evidence::dcap::{CollateralParts, TdxCollateral};
use tl_evidence::EvidenceError;

use crate::verifier::CollateralStore;

/// Largest collateral file read.
const MAX_FILE: u64 = tl_evidence::dcap::collateral::MAX_COLLATERAL_LEN as u64;
/// Most entries looked at in a collateral directory.
const MAX_ENTRIES: usize = 4096;

/// Why collateral files could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollateralFileError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("{path}: {} ({})", .source, .source.code())]
    Parse { path: String, source: EvidenceError },
    #[error("{0}: two collateral documents for the same TEE and FMSPC")]
    Duplicate(String),
    #[error("{0}: no collateral found")]
    Empty(String),
}

impl CollateralFileError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "COLLATERAL_FILE_UNREADABLE",
            Self::Invalid { .. } => "COLLATERAL_FILE_INVALID",
            Self::Parse { source, .. } => source.code(),
            Self::Duplicate(_) => "COLLATERAL_DUPLICATE",
            Self::Empty(_) => "COLLATERAL_DIR_EMPTY",
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CollateralFileError> {
    let io = |source| CollateralFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE {
        return Err(CollateralFileError::Invalid {
            path: path.display().to_string(),
            detail: format!("larger than {MAX_FILE} bytes"),
        });
    }
    std::fs::read(path).map_err(io)
}

/// Read collateral from a `QuoteCollateralV3` JSON file or a PCS-layout
/// directory (see the module documentation).
pub fn read_collateral(path: &Path) -> Result<TdxCollateral, CollateralFileError> {
    let parse = |source| CollateralFileError::Parse {
        path: path.display().to_string(),
        source,
    };
    if !path.is_dir() {
        return TdxCollateral::from_json(&read(path)?).map_err(parse);
    }
    let f = |name: &str| read(&path.join(name));
    let tcb_chain = f("tcb_info_issuer_chain.pem")?;
    let qe_chain = if path.join("qe_identity_issuer_chain.pem").exists() {
        f("qe_identity_issuer_chain.pem")?
    } else {
        tcb_chain.clone()
    };
    let (tcb, qe, crl_chain, pck_crl, root_crl) = (
        f("tcb_info.json")?,
        f("qe_identity.json")?,
        f("pck_crl_issuer_chain.pem")?,
        f("pck_crl.der")?,
        f("root_ca_crl.der")?,
    );
    TdxCollateral::from_parts(CollateralParts {
        tcb_info_response: &tcb,
        qe_identity_response: &qe,
        tcb_info_issuer_chain: &tcb_chain,
        qe_identity_issuer_chain: &qe_chain,
        pck_crl_issuer_chain: &crl_chain,
        pck_crl: &pck_crl,
        root_ca_crl: &root_crl,
    })
    .map_err(parse)
}

/// Read every collateral document under `dir` into a store: the directory
/// itself when it is one PCS layout (it holds `tcb_info.json`), otherwise
/// each `*.json` file (`QuoteCollateralV3`) and each subdirectory holding
/// `tcb_info.json`, in name order. Any unreadable or invalid document, two
/// documents for the same TEE and FMSPC, or none at all is an error: a CA
/// should not start with half of its collateral.
pub fn load_collateral_dir(dir: &Path) -> Result<CollateralStore, CollateralFileError> {
    let mut store = CollateralStore::default();
    let add = |store: &mut CollateralStore, p: &Path| {
        let c = read_collateral(p)?;
        if !store.insert(c) {
            return Err(CollateralFileError::Duplicate(p.display().to_string()));
        }
        Ok(())
    };
    if dir.join("tcb_info.json").is_file() {
        add(&mut store, dir)?;
        return Ok(store);
    }
    let io = |source| CollateralFileError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut paths = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let p = e.map_err(io)?.path();
        let json = p.is_file() && p.extension().is_some_and(|x| x == "json");
        let pcs = p.is_dir() && p.join("tcb_info.json").is_file();
        if json || pcs {
            paths.push(p);
        }
        if paths.len() > MAX_ENTRIES {
            return Err(CollateralFileError::Invalid {
                path: dir.display().to_string(),
                detail: format!("more than {MAX_ENTRIES} collateral documents"),
            });
        }
    }
    paths.sort();
    for p in &paths {
        add(&mut store, p)?;
    }
    if store.is_empty() {
        return Err(CollateralFileError::Empty(dir.display().to_string()));
    }
    Ok(store)
}
