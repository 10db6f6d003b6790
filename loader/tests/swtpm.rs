//! The loader's TPM client against a real TPM 2.0 (swtpm). Each test starts
//! its own swtpm on Unix sockets in its own state directory. swtpm missing is
//! a failure, not a skip: run scripts/tpm-deps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tl_evidence::tpm::attest::{TPM_ALG_SHA256, TPM_ALG_SHA384};
use tl_evidence::tpm::{parse_ak, verify_quote, AkTrust, PcrSelection};
use tl_loader::keys::LoaderKeys;
use tl_loader::tpm::{derive_encryption_key, Hierarchy, SealedSeed, Tpm, TpmTransportConfig};

struct Swtpm {
    child: Child,
    socket: PathBuf,
    _state: tempfile::TempDir,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Swtpm {
    /// swtpm on Unix sockets in its own state directory (no ports to race
    /// for between tests running in parallel).
    fn start() -> Swtpm {
        let state = tempfile::tempdir().unwrap();
        let socket = state.path().join("tpm.sock");
        let mut child = match Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .arg("--server")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", state.path().join("ctrl.sock").display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .args(["--tpmstate", &format!("dir={}", state.path().display())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "swtpm is not installed: run scripts/tpm-deps (installs Debian's swtpm and swtpm-tools)"
            ),
            Err(e) => panic!("starting swtpm: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("swtpm exited: {status}");
            }
            if socket.exists() {
                return Swtpm {
                    child,
                    socket,
                    _state: state,
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        panic!("swtpm did not create its socket within 10 s");
    }

    /// A connection (the socket file appears when swtpm binds it; it
    /// listens a moment later).
    fn client(&self) -> Tpm {
        let cfg = TpmTransportConfig::Unix {
            path: self.socket.clone(),
        };
        for _ in 0..100 {
            if let Ok(t) = Tpm::open(&cfg) {
                return t;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Tpm::open(&cfg).unwrap()
    }
}

fn sha256_sel(pcrs: &[u32]) -> Vec<PcrSelection> {
    vec![PcrSelection {
        hash_alg: TPM_ALG_SHA256,
        pcrs: pcrs.to_vec(),
    }]
}

fn report_data(tag: u8) -> [u8; 64] {
    let mut r = [0u8; 64];
    for (i, b) in r.iter_mut().enumerate() {
        *b = tag ^ i as u8;
    }
    r
}

#[test]
fn pcr_banks_read_and_extend() {
    let sw = Swtpm::start();
    let mut tpm = sw.client();
    let banks = tpm.allocated_banks().unwrap();
    let sha256 = banks.iter().find(|b| b.hash_alg == TPM_ALG_SHA256).unwrap();
    assert_eq!(sha256.pcrs, (0..24).collect::<Vec<_>>());

    // every allocated bank reads in full (more than 8 PCRs: several commands)
    let all = tpm.pcr_read(&banks).unwrap();
    for b in &banks {
        assert_eq!(all[&b.hash_alg].len(), b.pcrs.len());
    }
    assert_eq!(all[&TPM_ALG_SHA256][&16], vec![0u8; 32]);
    assert_eq!(all[&TPM_ALG_SHA256][&17], vec![0xffu8; 32]);

    // extend PCR 16 in every allocated bank and compare with a software replay
    let digests: Vec<(u16, Vec<u8>)> = banks
        .iter()
        .map(|b| {
            let len = all[&b.hash_alg][&0].len();
            (b.hash_alg, vec![0x5a; len])
        })
        .collect();
    tpm.pcr_extend(16, &digests).unwrap();
    let after = tpm.pcr_read(&sha256_sel(&[16])).unwrap();
    let mut pre = vec![0u8; 32];
    pre.extend_from_slice(&[0x5a; 32]);
    let expect = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &pre);
    assert_eq!(after[&TPM_ALG_SHA256][&16], expect.as_ref());
    if banks.iter().any(|b| b.hash_alg == TPM_ALG_SHA384) {
        let v = tpm
            .pcr_read(&[PcrSelection {
                hash_alg: TPM_ALG_SHA384,
                pcrs: vec![16],
            }])
            .unwrap();
        let mut pre = vec![0u8; 48];
        pre.extend_from_slice(&[0x5a; 48]);
        let expect = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &pre);
        assert_eq!(v[&TPM_ALG_SHA384][&16], expect.as_ref());
    }

    // a wrong digest length and a PCR index out of range are refused here
    assert_eq!(
        tpm.pcr_extend(16, &[(TPM_ALG_SHA256, vec![0; 20])])
            .unwrap_err()
            .code(),
        "TPM_ARGUMENT"
    );
    assert_eq!(
        tpm.pcr_read(&sha256_sel(&[24])).unwrap_err().code(),
        "TPM_ARGUMENT"
    );
    // a bank the TPM lacks (SM3_256) is reported, not invented
    let sm3 = [PcrSelection {
        hash_alg: 0x0012,
        pcrs: vec![0],
    }];
    let e = tpm.pcr_read(&sm3).unwrap_err();
    assert!(matches!(e.code(), "TPM_PCR_UNAVAILABLE" | "TPM_RC"), "{e}");
}

#[test]
fn quotes_verify_and_tampering_is_rejected() {
    let sw = Swtpm::start();
    let mut tpm = sw.client();
    let ak = tpm.create_ak(Hierarchy::Endorsement).unwrap();
    // primary keys are derived from the hierarchy seed: the same AK again
    let again = tpm.create_ak(Hierarchy::Endorsement).unwrap();
    assert_eq!(ak.public, again.public);
    tpm.flush(again.handle).unwrap();

    tpm.pcr_extend(16, &[(TPM_ALG_SHA256, vec![1; 32])])
        .unwrap();
    let sel = sha256_sel(&[0, 1, 2, 3, 4, 5, 6, 7, 16]);
    let rd = report_data(0x11);
    let ev = tpm.quote_evidence(&ak, &rd, &sel).unwrap();
    let trust = AkTrust::Pinned(parse_ak(&ev.ak_public).unwrap());
    let pcrs = ev.pcr_values().unwrap();

    let v = verify_quote(&ev.attest, &ev.signature, &pcrs, Some(&trust), &rd).unwrap();
    assert_eq!(v.report_data(), rd);
    assert_eq!(v.pcrs[&TPM_ALG_SHA256].len(), 9);
    assert_eq!(v.ak_trust, "pinned");
    assert_ne!(v.pcrs[&TPM_ALG_SHA256][&16], vec![0u8; 32]);

    // the bundle JSON round-trips
    let back = tl_evidence::tpm::TpmQuoteEvidence::from_json(&ev.to_json()).unwrap();
    assert_eq!(back, ev);

    // another nonce
    let err = verify_quote(
        &ev.attest,
        &ev.signature,
        &pcrs,
        Some(&trust),
        &report_data(0x12),
    )
    .unwrap_err();
    assert_eq!(err.code(), "TPM_NONCE_MISMATCH");

    // a changed PCR value given to the verifier
    let mut changed = pcrs.clone();
    changed
        .get_mut(&TPM_ALG_SHA256)
        .unwrap()
        .get_mut(&7)
        .unwrap()[0] ^= 1;
    let err = verify_quote(&ev.attest, &ev.signature, &changed, Some(&trust), &rd).unwrap_err();
    assert_eq!(err.code(), "TPM_PCR_DIGEST_MISMATCH");

    // a forged signature: flip a byte of r (the signature is
    // sigAlg | hash | TPM2B r | TPM2B s, so byte 6 is inside r)
    let mut forged = ev.signature.clone();
    forged[6] ^= 1;
    let err = verify_quote(&ev.attest, &forged, &pcrs, Some(&trust), &rd).unwrap_err();
    assert_eq!(err.code(), "TPM_QUOTE_SIGNATURE");
    // an edited attest (extraData replaced) under the original signature
    let mut attest = ev.attest.clone();
    let pos = attest.windows(64).position(|w| w == rd).unwrap();
    attest[pos..pos + 64].copy_from_slice(&report_data(0x12));
    let err = verify_quote(
        &attest,
        &ev.signature,
        &pcrs,
        Some(&trust),
        &report_data(0x12),
    )
    .unwrap_err();
    assert_eq!(err.code(), "TPM_QUOTE_SIGNATURE");

    // a quote by another AK (owner hierarchy) is not accepted under the pinned one
    let other = tpm.create_ak(Hierarchy::Owner).unwrap();
    assert_ne!(other.public, ak.public);
    let q = tpm.quote(&other, &rd, &sel).unwrap();
    let err = verify_quote(&q.attest, &q.signature, &pcrs, Some(&trust), &rd).unwrap_err();
    assert_eq!(err.code(), "TPM_QUOTE_SIGNATURE");
    // and no trust at all
    let err = verify_quote(&ev.attest, &ev.signature, &pcrs, None, &rd).unwrap_err();
    assert_eq!(err.code(), "TPM_AK_UNTRUSTED");

    // sha384 bank too, when allocated
    let banks = tpm.allocated_banks().unwrap();
    if banks.iter().any(|b| b.hash_alg == TPM_ALG_SHA384) {
        let sel = vec![
            PcrSelection {
                hash_alg: TPM_ALG_SHA384,
                pcrs: vec![0, 16],
            },
            PcrSelection {
                hash_alg: TPM_ALG_SHA256,
                pcrs: vec![16],
            },
        ];
        let ev = tpm.quote_evidence(&ak, &rd, &sel).unwrap();
        let v = verify_quote(
            &ev.attest,
            &ev.signature,
            &ev.pcr_values().unwrap(),
            Some(&trust),
            &rd,
        )
        .unwrap();
        assert_eq!(v.pcrs[&TPM_ALG_SHA384].len(), 2);
    }
    // more than 64 bytes of qualifying data is refused before the TPM
    assert_eq!(
        tpm.quote(&ak, &[0u8; 65], &sel).unwrap_err().code(),
        "TPM_ARGUMENT"
    );
}

#[test]
fn sealed_seed_unseals_until_a_pcr_changes() {
    let sw = Swtpm::start();
    let mut tpm = sw.client();
    let seed = [0x42u8; 32];
    let sel = sha256_sel(&[0, 7, 16]);
    let sealed = tpm.seal_seed(&seed, &sel).unwrap();
    let blob = sealed.to_bytes();
    let sealed = SealedSeed::from_bytes(&blob).unwrap();

    // same seed, twice (the seed does not live in the client)
    assert_eq!(*tpm.unseal_seed(&sealed).unwrap(), seed);
    assert_eq!(*tpm.unseal_seed(&sealed).unwrap(), seed);

    // the key mode derives the same key each time, and the expected one
    let k1 = LoaderKeys::tpm_sealed(&mut tpm, &sealed, 1).unwrap();
    let k2 = LoaderKeys::tpm_sealed(&mut tpm, &sealed, 1).unwrap();
    assert_eq!(k1.encryption_public_raw(), k2.encryption_public_raw());
    assert_eq!(
        k1.encryption_public_raw(),
        *derive_encryption_key(&seed, 1).public_key().as_bytes()
    );
    // another key version, another key
    let k3 = LoaderKeys::tpm_sealed(&mut tpm, &sealed, 2).unwrap();
    assert_ne!(k1.encryption_public_raw(), k3.encryption_public_raw());

    // a damaged blob does not load
    let mut bad = blob.clone();
    let n = bad.len();
    bad[n - 3] ^= 1;
    let bad = SealedSeed::from_bytes(&bad).unwrap();
    let halt = LoaderKeys::tpm_sealed(&mut tpm, &bad, 1).unwrap_err();
    assert_eq!(halt.code(), "KEY_DERIVATION_FAILED");

    // sealed to predicted values that are not the current ones: refused
    let mut predicted = tpm.pcr_read(&sel).unwrap();
    predicted
        .get_mut(&TPM_ALG_SHA256)
        .unwrap()
        .insert(7, vec![9u8; 32]);
    let future = tpm.seal_seed_to(&seed, &sel, &predicted).unwrap();
    assert_eq!(
        tpm.unseal_seed(&future).unwrap_err().code(),
        "TPM_POLICY_FAILED"
    );

    // a PCR in the policy changes: unseal fails, and the key mode halts
    tpm.pcr_extend(16, &[(TPM_ALG_SHA256, vec![3; 32])])
        .unwrap();
    let err = tpm.unseal_seed(&sealed).unwrap_err();
    assert_eq!(err.code(), "TPM_POLICY_FAILED", "{err}");
    let halt = LoaderKeys::tpm_sealed(&mut tpm, &sealed, 1).unwrap_err();
    assert_eq!(halt.code(), "KEY_DERIVATION_FAILED");
    assert!(halt.detail.contains("TPM_POLICY_FAILED"), "{}", halt.detail);
    let halt = tl_loader::tpm::unseal_encryption_key(&mut tpm, &sealed, 1).unwrap_err();
    assert_eq!(halt.code(), "KEY_DERIVATION_FAILED");

    // a seed sealed now (to the new value) unseals; nothing leaked between
    // sessions: repeated use leaves no handles behind (the TPM would run
    // out of transient slots after three)
    let resealed = tpm.seal_seed(&seed, &sel).unwrap();
    for _ in 0..8 {
        assert_eq!(*tpm.unseal_seed(&resealed).unwrap(), seed);
        assert!(tpm.unseal_seed(&sealed).is_err());
    }
    // a PCR outside the policy does not matter
    tpm.pcr_extend(23, &[(TPM_ALG_SHA256, vec![4; 32])])
        .unwrap();
    assert_eq!(*tpm.unseal_seed(&resealed).unwrap(), seed);
}

#[test]
fn a_fresh_tpm_cannot_unseal_another_tpms_seed() {
    let a = Swtpm::start();
    let b = Swtpm::start();
    let sel = sha256_sel(&[7]);
    let sealed = a.client().seal_seed(&[1u8; 32], &sel).unwrap();
    let err = b.client().unseal_seed(&sealed).unwrap_err();
    assert_eq!(err.code(), "TPM_RC", "{err}");
}

#[test]
fn a_tpm_bundle_verifies_with_its_binding() {
    use tl_evidence::binding::Binding;
    use tl_evidence::bundle::EvidenceBundle;
    use tl_evidence::{verify_bundle, TrustAnchors, VerifyOptions};

    let sw = Swtpm::start();
    let mut tpm = sw.client();
    let ak = tpm.create_ak(Hierarchy::Endorsement).unwrap();
    let binding = Binding {
        nonce: b"ca-nonce-0123456789abcdef",
        signing_public_key: b"spki",
        encryption_public_key: &[9u8; 32],
        gpu_evidence_digest: tl_evidence::binding::gpu_evidence_digest([]),
        tpm_ak_digest: None,
    };
    let rd = binding.report_data();
    let sel = sha256_sel(&[0, 7, 16]);
    let ev = tpm.quote_evidence(&ak, &rd, &sel).unwrap();
    let bundle = EvidenceBundle::new(tl_loader::tpm::cpu_evidence(&ev, vec![]));
    let pinned = TrustAnchors {
        tpm_pinned_aks: vec![ak.public.clone()],
        ..TrustAnchors::default()
    };
    let v = verify_bundle(&bundle, &VerifyOptions::new(1_700_000_000, pinned)).unwrap();
    v.check_binding(&binding).unwrap();
    let pcrs = &v.claims.tpm.as_ref().unwrap().pcrs;
    assert_eq!(pcrs["sha256"].len(), 3);

    // the same bundle with no pinned AK
    let err = verify_bundle(
        &bundle,
        &VerifyOptions::new(1_700_000_000, TrustAnchors::default()),
    )
    .unwrap_err();
    assert_eq!(err.code(), "TPM_AK_UNTRUSTED");
    // another binding (other encryption key) does not match
    let other = Binding {
        encryption_public_key: &[8u8; 32],
        ..binding
    };
    assert_eq!(
        v.check_binding(&other).unwrap_err().code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
}
