//! The seam between the CA and evidence verification. Pure: collateral is
//! read from files elsewhere ([`crate::collateral`]) and handed in parsed.

use std::sync::Arc;

use tl_evidence::bundle::{CpuEvidenceKind, EvidenceBundle};
use tl_evidence::dcap::{DcapTee, TdxCollateral};
use tl_evidence::nvidia::GpuAnchors;
use tl_evidence::verify::{AnchorKind, Collateral, TrustAnchors, VerifyOptions};
use tl_evidence::PlatformClaims;

/// Why evidence was refused: a stable code (from the verifier) and detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Rejection {
    pub code: &'static str,
    pub detail: String,
}

/// Verifies an evidence bundle at a time and returns the platform's claims.
///
/// Implementations must check every signature and chain and must not accept
/// the simulated TEE's root unless it was configured explicitly. `nonce` is
/// the enrollment nonce the bundle answers: GPU reports must answer
/// `tl_evidence::binding::gpu_nonce(nonce, index)`, NVSwitch reports
/// `tl_evidence::binding::nvswitch_nonce(nonce, index)`.
pub trait EvidenceVerifier: Send + Sync {
    fn verify(
        &self,
        bundle: &EvidenceBundle,
        nonce: &[u8],
        now_unix: u64,
    ) -> Result<PlatformClaims, Rejection>;
}

/// Parsed DCAP collateral, one document per TEE kind and FMSPC, shared
/// by every verification (each document checks its signatures once).
#[derive(Clone, Debug, Default)]
pub struct CollateralStore {
    entries: Vec<Arc<TdxCollateral>>,
}

impl CollateralStore {
    /// Add `c`; false (and nothing added) when the store already holds
    /// collateral for the same TEE kind and FMSPC.
    pub fn insert(&mut self, c: TdxCollateral) -> bool {
        if self.get(c.tee(), c.fmspc()).is_some() {
            return false;
        }
        self.entries.push(Arc::new(c));
        true
    }

    /// The collateral for `tee` and `fmspc`.
    pub fn get(&self, tee: DcapTee, fmspc: [u8; 6]) -> Option<Arc<TdxCollateral>> {
        self.entries
            .iter()
            .find(|c| c.tee() == tee && c.fmspc() == fmspc)
            .cloned()
    }

    /// How many documents the store holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every document, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TdxCollateral>> {
        self.entries.iter()
    }
}

/// The evidence crate's verifier ([`tl_evidence::verify::verify_bundle`])
/// with fixed trust anchors and offline DCAP collateral.
///
/// * The simulated TEE's root is trusted only when it is set in the anchors,
///   which `tl-ca serve` does only with `--allow-simulated-root FILE`.
/// * A TDX quote chained to the Intel root is appraised with the collateral
///   for its PCK certificate's FMSPC ([`Self::with_collateral`]); without
///   one it is refused with `EVIDENCE_COLLATERAL_MISSING`.
/// * A simulated quote is appraised through the same DCAP path when
///   simulated collateral was given ([`Self::with_sim_collateral`]);
///   otherwise its status is `UpToDate` by construction.
///
/// * GPU and NVSwitch chains end at NVIDIA's device root, or at a root
///   added with [`Self::with_gpu_anchors`] (`tl-ca serve` adds the simulated
///   NVIDIA root only with `--allow-simulated-gpu-root FILE`, which needs
///   `--allow-simulated-root`).
///
/// * With [`Self::with_reference_check`], a TDX quote appraised with
///   collateral must also verify with dcap-qvl's whole verifier
///   ([`tl_evidence::dcap::reference`]) to the same TCB status and
///   advisories; otherwise it is refused with `REFERENCE_DISAGREES`. Two
///   independent verifiers must then agree before a certificate is issued.
///
/// Whether a TCB status is acceptable is the issuance policy's decision,
/// not the verifier's.
#[derive(Clone, Debug)]
pub struct SimAwareVerifier {
    anchors: TrustAnchors,
    collateral: Arc<CollateralStore>,
    sim_collateral: Option<Arc<TdxCollateral>>,
    gpu_anchors: GpuAnchors,
    reference_check: bool,
}

/// Another name for [`SimAwareVerifier`], for callers that configure it
/// only with the Intel root and collateral.
pub type DcapVerifier = SimAwareVerifier;

impl SimAwareVerifier {
    /// A verifier trusting exactly `anchors`, without collateral.
    pub fn new(anchors: TrustAnchors) -> Self {
        Self {
            anchors,
            collateral: Arc::new(CollateralStore::default()),
            sim_collateral: None,
            gpu_anchors: GpuAnchors::nvidia(),
            reference_check: false,
        }
    }

    /// Require dcap-qvl's verdict to match on every TDX quote appraised
    /// with collateral (`tl-ca serve --reference-check`).
    pub fn with_reference_check(mut self, on: bool) -> Self {
        self.reference_check = on;
        self
    }

    /// Verify GPU and NVSwitch device chains against `anchors` instead of
    /// NVIDIA's device root alone (e.g. NVIDIA's and the simulated one).
    pub fn with_gpu_anchors(mut self, anchors: GpuAnchors) -> Self {
        self.gpu_anchors = anchors;
        self
    }

    /// Appraise real (Intel-rooted) TDX quotes with `store`.
    pub fn with_collateral(mut self, store: CollateralStore) -> Self {
        self.collateral = Arc::new(store);
        self
    }

    /// Appraise simulated quotes through the DCAP path with `c` (simulated
    /// collateral, chained to the simulated root).
    pub fn with_sim_collateral(mut self, c: TdxCollateral) -> Self {
        self.sim_collateral = Some(Arc::new(c));
        self
    }

    /// True when the simulated root is among the anchors.
    pub fn allows_simulated(&self) -> bool {
        self.anchors.simulated_root_der.is_some()
    }

    /// The collateral held for real quotes.
    pub fn collateral(&self) -> &CollateralStore {
        &self.collateral
    }

    /// Pick the collateral for a TDX quote: by its trust anchor and its PCK
    /// certificate's FMSPC. `None` when the quote does not verify (the
    /// verification that follows reports why) or nothing applies. Returns
    /// the FMSPC for error details too.
    fn select(&self, quote: &[u8], now_unix: u64) -> Selected {
        if self.collateral.is_empty() && self.sim_collateral.is_none() {
            return Selected::default();
        }
        // The quote's signatures are checked here and again by
        // verify_bundle: a few ECDSA verifications, small next to a TLS
        // handshake, for a selection that cannot be fooled by unsigned bytes.
        let Ok(vq) =
            tl_evidence::tdx::verify::verify_quote_signatures(quote, &self.anchors, now_unix)
        else {
            return Selected::default();
        };
        let fmspc = vq.pck.as_ref().map(|p| p.fmspc);
        let (collateral, root) = match vq.anchor {
            AnchorKind::Simulated => (
                self.sim_collateral.clone(),
                self.anchors.simulated_root_der.clone(),
            ),
            AnchorKind::Intel => (
                fmspc.and_then(|f| self.collateral.get(DcapTee::Tdx, f)),
                self.anchors.intel_root_der.clone(),
            ),
            _ => (None, None),
        };
        Selected {
            collateral,
            fmspc,
            root,
        }
    }
}

/// The collateral for a TDX quote, its FMSPC, and the root the quote
/// chains to.
#[derive(Default)]
struct Selected {
    collateral: Option<Arc<TdxCollateral>>,
    fmspc: Option<[u8; 6]>,
    root: Option<Vec<u8>>,
}

/// dcap-qvl's verdict on a quote this crate's verifier accepted with
/// `claims`: `REFERENCE_DISAGREES` unless both agree.
fn reference_check(
    quote: &[u8],
    collateral: &TdxCollateral,
    root: &[u8],
    now_unix: u64,
    claims: &PlatformClaims,
) -> Result<(), Rejection> {
    use tl_evidence::dcap::reference::{
        compare, verify_with_dcap_qvl, Agreement, REFERENCE_DISAGREES,
    };
    // Debug is the issuance policy's question here: dcap-qvl verifies debug
    // quotes too, so the verdicts compare.
    let r = verify_with_dcap_qvl(quote, collateral, root, now_unix, true);
    match compare(Some((claims.tcb_status, &claims.advisory_ids)), &r) {
        Agreement::AcceptedAlike => Ok(()),
        Agreement::Disagree(d) => Err(Rejection {
            code: REFERENCE_DISAGREES,
            detail: d,
        }),
        other => Err(Rejection {
            code: REFERENCE_DISAGREES,
            detail: format!("{other:?}"),
        }),
    }
}

impl EvidenceVerifier for SimAwareVerifier {
    fn verify(
        &self,
        bundle: &EvidenceBundle,
        nonce: &[u8],
        now_unix: u64,
    ) -> Result<PlatformClaims, Rejection> {
        let mut opts = VerifyOptions::new(now_unix, self.anchors.clone());
        opts.expected_nonce = Some(nonce.to_vec());
        opts.gpu_anchors = self.gpu_anchors.clone();
        let mut selected = Selected::default();
        if bundle.cpu.kind == CpuEvidenceKind::TdxQuote {
            selected = self.select(&bundle.cpu.quote, now_unix);
            opts.collateral = selected.collateral.clone().map(Collateral::Tdx);
        }
        let fmspc = selected.fmspc;
        let claims = tl_evidence::verify::verify_bundle(bundle, &opts)
            .map(|v| v.claims)
            .map_err(|e| {
                let mut detail = e.to_string();
                if e.code() == "EVIDENCE_COLLATERAL_MISSING" {
                    if let Some(f) = fmspc {
                        detail = format!("{detail}: none for FMSPC {}", hex::encode(f));
                    }
                }
                Rejection {
                    code: e.code(),
                    detail,
                }
            })?;
        if self.reference_check {
            // Appraised with collateral: the only case dcap-qvl can judge.
            if let (Some(c), Some(root)) = (&selected.collateral, &selected.root) {
                reference_check(&bundle.cpu.quote, c, root, now_unix, &claims)?;
            }
        }
        Ok(claims)
    }
}
