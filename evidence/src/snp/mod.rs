//! AMD SEV-SNP: the attestation report, the AMD certificate chain
//! (VCEK/VLEK -> ASK/ASVK -> ARK, with AMD's roots for Milan, Genoa and
//! Turin shipped in `roots/amd/`), verification into claims, and pure
//! appraisal helpers. See `docs/formats/snp.md`.

pub mod appraise;
pub mod certs;
pub mod report;
pub mod verify;

pub use appraise::{GuestPolicy, SnpAppraisal, SnpFinding};
pub use certs::{LeafExtensions, LeafKind, Product};
pub use report::{SnpReport, TcbLayout, TcbParts, TcbVersion};
pub use verify::{
    check_chip_id, check_tcb, snp_claims, verify_leaf_chain, verify_report_with_leaf,
    verify_snp_evidence, VcekCacheKey, VerifiedLeaf, VerifiedSnp,
};
