//! Pure appraisal helpers for SEV-SNP claims: guest policy bits and a
//! default appraisal that the CA and orders can build on.
//!
//! Guest policy (ABI specification, "GUEST_POLICY"): bits 7:0 ABI minor,
//! 15:8 ABI major, 16 SMT allowed, 17 reserved (must be one), 18 migration
//! agent allowed, 19 debug allowed, 20 single socket only, 21 CXL allowed,
//! 22 AES-256-XTS required, 23 RAPL disable, 24 ciphertext hiding, 25 page
//! swap disable.

use crate::claims::{PlatformClaims, TeeKind};
use crate::snp::report::{TcbLayout, TcbParts, TcbVersion};

/// An SEV-SNP guest policy word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    fn bit(self, n: u32) -> bool {
        self.0 >> n & 1 == 1
    }
    pub fn abi_minor(self) -> u8 {
        (self.0 & 0xff) as u8
    }
    pub fn abi_major(self) -> u8 {
        (self.0 >> 8 & 0xff) as u8
    }
    pub fn smt_allowed(self) -> bool {
        self.bit(16)
    }
    /// Bit 17 is reserved and must be one in a valid policy.
    pub fn reserved_one(self) -> bool {
        self.bit(17)
    }
    pub fn migrate_ma_allowed(self) -> bool {
        self.bit(18)
    }
    /// Bit 19: the hypervisor may debug the guest (its memory is readable).
    pub fn debug(self) -> bool {
        self.bit(19)
    }
    pub fn single_socket(self) -> bool {
        self.bit(20)
    }
    pub fn cxl_allowed(self) -> bool {
        self.bit(21)
    }
    pub fn mem_aes_256_xts(self) -> bool {
        self.bit(22)
    }
    pub fn rapl_disabled(self) -> bool {
        self.bit(23)
    }
    pub fn ciphertext_hiding(self) -> bool {
        self.bit(24)
    }
    pub fn page_swap_disabled(self) -> bool {
        self.bit(25)
    }
}

/// What the default appraisal requires. [`Default`]: debug forbidden,
/// migration agent forbidden, SMT allowed, any ABI, VMPL 0 only, no TCB floor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpAppraisal {
    pub allow_debug: bool,
    pub allow_migration_agent: bool,
    pub allow_smt: bool,
    pub require_single_socket: bool,
    /// Minimum ABI (major, minor).
    pub min_abi: (u8, u8),
    /// Highest VMPL accepted (0 = only the most privileged).
    pub max_vmpl: u32,
    /// Minimum REPORTED_TCB, compared component by component.
    pub min_tcb: Option<TcbParts>,
    /// The layout of REPORTED_TCB (Milan/Genoa or Turin).
    pub layout: TcbLayout,
}

impl Default for SnpAppraisal {
    fn default() -> Self {
        SnpAppraisal {
            allow_debug: false,
            allow_migration_agent: false,
            allow_smt: true,
            require_single_socket: false,
            min_abi: (0, 0),
            max_vmpl: 0,
            min_tcb: None,
            layout: TcbLayout::MilanGenoa,
        }
    }
}

/// One reason an appraisal failed, with a stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnpFinding {
    NotSnp,
    Debug,
    MigrationAgent,
    Smt,
    NotSingleSocket,
    AbiTooOld,
    Vmpl,
    TcbTooLow,
}

impl SnpFinding {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotSnp => "SNP_CLAIMS_MISSING",
            Self::Debug => "SNP_POLICY_DEBUG",
            Self::MigrationAgent => "SNP_POLICY_MIGRATION_AGENT",
            Self::Smt => "SNP_POLICY_SMT",
            Self::NotSingleSocket => "SNP_POLICY_NOT_SINGLE_SOCKET",
            Self::AbiTooOld => "SNP_POLICY_ABI_TOO_OLD",
            Self::Vmpl => "SNP_VMPL",
            Self::TcbTooLow => "SNP_TCB_TOO_LOW",
        }
    }
}

impl SnpAppraisal {
    /// Every way `claims` fall short (empty = acceptable).
    pub fn appraise(&self, claims: &PlatformClaims) -> Vec<SnpFinding> {
        let Some(s) = claims
            .snp
            .as_ref()
            .filter(|_| claims.tee == TeeKind::SevSnp)
        else {
            return vec![SnpFinding::NotSnp];
        };
        let p = GuestPolicy(s.policy);
        let mut f = Vec::new();
        if (p.debug() || claims.debug) && !self.allow_debug {
            f.push(SnpFinding::Debug);
        }
        if p.migrate_ma_allowed() && !self.allow_migration_agent {
            f.push(SnpFinding::MigrationAgent);
        }
        if p.smt_allowed() && !self.allow_smt {
            f.push(SnpFinding::Smt);
        }
        if self.require_single_socket && !p.single_socket() {
            f.push(SnpFinding::NotSingleSocket);
        }
        if (p.abi_major(), p.abi_minor()) < self.min_abi {
            f.push(SnpFinding::AbiTooOld);
        }
        if s.vmpl > self.max_vmpl {
            f.push(SnpFinding::Vmpl);
        }
        if let Some(min) = &self.min_tcb {
            if !TcbVersion(s.reported_tcb).parts(self.layout).at_least(min) {
                f.push(SnpFinding::TcbTooLow);
            }
        }
        f
    }
}
